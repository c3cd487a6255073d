-- VPNMarket HEAD (81c4845) on top of c696ca1, as Laravel 12.33's PostgresGrammar emits
-- it, in migration order. The two enum migrations do not work on PostgreSQL in the
-- original: 2025_11_09_151419 runs `ALTER TYPE reseller_status ADD VALUE ...`, which
-- fails because Laravel makes no enum types (it uses varchar + CHECK), and
-- 2025_11_09_171308 looks the column up under the *mysql* connection's database name
-- and so does nothing. Both are replaced below by the CHECK changes that give the same
-- result as the MySQL statements: type gains 'wallet' and DEFAULT 'traffic'; status
-- gains 'suspended_wallet' and, like MySQL's MODIFY without NOT NULL, becomes nullable.

-- 2025_11_05_152259_add_admin_forgiven_bytes_to_resellers_table
alter table "resellers" add column "admin_forgiven_bytes" bigint not null default '0';

-- 2025_11_09_151245_add_wallet_fields_to_resellers_table
alter table "resellers" add column "billing_type" varchar(20) not null default 'traffic';
alter table "resellers" add column "wallet_balance" bigint not null default '0';
alter table "resellers" add column "wallet_price_per_gb" integer null;

-- 2025_11_09_151308_create_reseller_usage_snapshots_table
create table "reseller_usage_snapshots" ("id" bigserial not null primary key, "reseller_id" bigint not null, "total_bytes" bigint not null default '0', "measured_at" timestamp(0) without time zone not null default CURRENT_TIMESTAMP);
alter table "reseller_usage_snapshots" add constraint "reseller_usage_snapshots_reseller_id_foreign" foreign key ("reseller_id") references "resellers" ("id") on delete cascade;
create index "reseller_usage_snapshots_reseller_id_measured_at_index" on "reseller_usage_snapshots" ("reseller_id", "measured_at");
comment on column "reseller_usage_snapshots"."total_bytes" is 'Cumulative usage at measurement time';

-- 2025_11_09_151419_add_suspended_wallet_status_to_resellers (parity, see above)
alter table "resellers" drop constraint "resellers_status_check";
alter table "resellers" add constraint "resellers_status_check" check ("status" in ('active', 'suspended', 'suspended_wallet'));
alter table "resellers" alter column "status" drop not null;

-- 2025_11_09_171308_add_wallet_type_to_resellers_type_enum (parity, see above)
alter table "resellers" drop constraint "resellers_type_check";
alter table "resellers" add constraint "resellers_type_check" check ("type" in ('plan', 'traffic', 'wallet'));
alter table "resellers" alter column "type" set default 'traffic';
