-- VPNMarket HEAD (81c4845) on top of c696ca1, as Laravel 12.33's SQLiteGrammar emits it,
-- in migration order. The two enum migrations do nothing on SQLite in the original
-- (there the rebuilt `resellers` table has no CHECKs left; see sqlite_c696ca1.sql).
-- Since this schema keeps the CHECKs, they are widened here the way Laravel alters a
-- SQLite table (rebuild through __temp__resellers, foreign keys off meanwhile), with
-- the MySQL statements' effect: type gains 'wallet' and DEFAULT 'traffic'; status gains
-- 'suspended_wallet' and becomes nullable. apply_original_schema runs the two pragmas
-- only when foreign keys were on, as Laravel does.

-- 2025_11_05_152259_add_admin_forgiven_bytes_to_resellers_table
alter table "resellers" add column "admin_forgiven_bytes" integer not null default '0';

-- 2025_11_09_151245_add_wallet_fields_to_resellers_table
alter table "resellers" add column "billing_type" varchar not null default 'traffic';
alter table "resellers" add column "wallet_balance" integer not null default '0';
alter table "resellers" add column "wallet_price_per_gb" integer;

-- 2025_11_09_151308_create_reseller_usage_snapshots_table
create table "reseller_usage_snapshots" ("id" integer primary key autoincrement not null, "reseller_id" integer not null, "total_bytes" integer not null default '0', "measured_at" datetime not null default CURRENT_TIMESTAMP, foreign key("reseller_id") references "resellers"("id") on delete cascade);
create index "reseller_usage_snapshots_reseller_id_measured_at_index" on "reseller_usage_snapshots" ("reseller_id", "measured_at");

-- 2025_11_09_151419 + 2025_11_09_171308 (parity, see above)
pragma foreign_keys = 0;
create table "__temp__resellers" ("id" integer primary key autoincrement not null, "user_id" integer not null, "type" varchar check ("type" in ('plan', 'traffic', 'wallet')) not null default 'traffic', "status" varchar check ("status" in ('active', 'suspended', 'suspended_wallet')) default 'active', "username_prefix" varchar, "traffic_total_bytes" integer, "traffic_used_bytes" integer not null default '0', "window_starts_at" datetime, "window_ends_at" datetime, "marzneshin_allowed_service_ids" text, "settings" text, "created_at" datetime, "updated_at" datetime, "panel_id" integer, "config_limit" integer, "eylandoo_allowed_node_ids" text, "admin_forgiven_bytes" integer not null default '0', "billing_type" varchar not null default 'traffic', "wallet_balance" integer not null default '0', "wallet_price_per_gb" integer, foreign key("user_id") references "users"("id") on delete cascade, foreign key("panel_id") references "panels"("id") on delete set null);
insert into "__temp__resellers" ("id", "user_id", "type", "status", "username_prefix", "traffic_total_bytes", "traffic_used_bytes", "window_starts_at", "window_ends_at", "marzneshin_allowed_service_ids", "settings", "created_at", "updated_at", "panel_id", "config_limit", "eylandoo_allowed_node_ids", "admin_forgiven_bytes", "billing_type", "wallet_balance", "wallet_price_per_gb") select "id", "user_id", "type", "status", "username_prefix", "traffic_total_bytes", "traffic_used_bytes", "window_starts_at", "window_ends_at", "marzneshin_allowed_service_ids", "settings", "created_at", "updated_at", "panel_id", "config_limit", "eylandoo_allowed_node_ids", "admin_forgiven_bytes", "billing_type", "wallet_balance", "wallet_price_per_gb" from "resellers";
drop table "resellers";
alter table "__temp__resellers" rename to "resellers";
create unique index "resellers_user_id_unique" on "resellers" ("user_id");
pragma foreign_keys = 1;
