-- VPNMarket at c696ca1: the tables usage-sync reads and writes, as Laravel 12.33's
-- PostgresGrammar emits them. Enums are varchar(255) with a CHECK that PostgreSQL names
-- <table>_<column>_check; `->after()` is ignored, so added columns go last; unsigned
-- integers are plain bigint/integer. Statements are in migration order.
-- `users` is the Laravel 12 default shape; the app's extra user columns are left out.

-- 0001_01_01_000000_create_users_table
create table "users" ("id" bigserial not null primary key, "name" varchar(255) not null, "email" varchar(255) not null, "email_verified_at" timestamp(0) without time zone null, "password" varchar(255) not null, "remember_token" varchar(100) null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);
alter table "users" add constraint "users_email_unique" unique ("email");

-- 2025_09_10_174918_create_settings_table
create table "settings" ("id" bigserial not null primary key, "key" varchar(255) not null, "value" text null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);
alter table "settings" add constraint "settings_key_unique" unique ("key");

-- 2025_09_18_040336_add_xui_link_type_to_settings_table
alter table "settings" add column "xui_link_type" varchar(255) not null default 'single';
comment on column "settings"."xui_link_type" is 'نوع لینک تولید شده: single یا subscription';

-- 2025_10_18_201441_create_panels_table
create table "panels" ("id" bigserial not null primary key, "name" varchar(255) not null, "url" varchar(255) not null, "panel_type" varchar(255) check ("panel_type" in ('marzban', 'marzneshin', 'xui', 'v2ray', 'eylandoo', 'other')) not null default 'marzban', "username" varchar(255) null, "password" text null, "api_token" text null, "extra" json null, "is_active" boolean not null default '1', "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);

-- 2025_10_19_094301_create_resellers_table
create table "resellers" ("id" bigserial not null primary key, "user_id" bigint not null, "type" varchar(255) check ("type" in ('plan', 'traffic')) not null default 'plan', "status" varchar(255) check ("status" in ('active', 'suspended')) not null default 'active', "username_prefix" varchar(255) null, "traffic_total_bytes" bigint null, "traffic_used_bytes" bigint not null default '0', "window_starts_at" timestamp(0) without time zone null, "window_ends_at" timestamp(0) without time zone null, "marzneshin_allowed_service_ids" json null, "settings" json null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);
alter table "resellers" add constraint "resellers_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;
alter table "resellers" add constraint "resellers_user_id_unique" unique ("user_id");

-- 2025_10_19_094304_create_reseller_configs_table
create table "reseller_configs" ("id" bigserial not null primary key, "reseller_id" bigint not null, "external_username" varchar(255) not null, "traffic_limit_bytes" bigint not null, "usage_bytes" bigint not null default '0', "expires_at" timestamp(0) without time zone not null, "status" varchar(255) check ("status" in ('active', 'disabled', 'expired', 'deleted')) not null default 'active', "panel_type" varchar(255) check ("panel_type" in ('marzban', 'marzneshin', 'xui')) not null, "panel_user_id" varchar(255) null, "created_by" bigint not null, "disabled_at" timestamp(0) without time zone null, "deleted_at" timestamp(0) without time zone null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);
alter table "reseller_configs" add constraint "reseller_configs_reseller_id_foreign" foreign key ("reseller_id") references "resellers" ("id") on delete cascade;
alter table "reseller_configs" add constraint "reseller_configs_created_by_foreign" foreign key ("created_by") references "users" ("id");
create index "reseller_configs_reseller_id_status_index" on "reseller_configs" ("reseller_id", "status");

-- 2025_10_19_110100_add_panel_id_to_resellers_table
alter table "resellers" add column "panel_id" bigint null;
alter table "resellers" add constraint "resellers_panel_id_foreign" foreign key ("panel_id") references "panels" ("id") on delete set null;

-- 2025_10_19_120000_change_reseller_traffic_columns_to_unsigned_big_integer
alter table "resellers" alter column "traffic_total_bytes" type bigint, alter column "traffic_total_bytes" drop not null, alter column "traffic_total_bytes" drop default, alter column "traffic_total_bytes" drop identity if exists;
alter table "resellers" alter column "traffic_used_bytes" type bigint, alter column "traffic_used_bytes" set not null, alter column "traffic_used_bytes" set default '0', alter column "traffic_used_bytes" drop identity if exists;
comment on column "resellers"."traffic_total_bytes" is NULL;
comment on column "resellers"."traffic_used_bytes" is NULL;

-- 2025_10_19_133047_add_subscription_url_and_panel_id_to_reseller_configs_table
alter table "reseller_configs" add column "subscription_url" varchar(255) null;
alter table "reseller_configs" add column "panel_id" bigint null;
alter table "reseller_configs" add constraint "reseller_configs_panel_id_foreign" foreign key ("panel_id") references "panels" ("id") on delete set null;

-- 2025_10_20_135432_add_comment_to_reseller_configs_table
alter table "reseller_configs" add column "comment" varchar(200) null;

-- 2025_10_20_141640_add_config_limit_to_resellers_table
alter table "resellers" add column "config_limit" integer null;

-- 2025_11_03_233327_add_meta_to_reseller_configs_table
alter table "reseller_configs" add column "meta" json null;

-- 2025_11_04_072100_add_prefix_and_custom_name_to_reseller_configs_table
alter table "reseller_configs" add column "prefix" varchar(50) null;
alter table "reseller_configs" add column "custom_name" varchar(100) null;

-- 2025_11_04_175304_add_eylandoo_support_and_connections_to_reseller_configs_table
alter table "reseller_configs" add column "connections" integer null;
-- NOT what the app does on PostgreSQL: its `panel_type` widening is a MySQL-only raw
-- ALTER, so a real PostgreSQL install still rejects 'eylandoo' here. Widened for
-- parity with MySQL, the database the app actually runs on.
alter table "reseller_configs" drop constraint "reseller_configs_panel_type_check";
alter table "reseller_configs" add constraint "reseller_configs_panel_type_check" check ("panel_type" in ('marzban', 'marzneshin', 'xui', 'eylandoo'));

-- 2025_11_04_181502_add_eylandoo_allowed_node_ids_to_resellers_table
alter table "resellers" add column "eylandoo_allowed_node_ids" json null;

-- 2025_11_04_183611_add_eylandoo_to_panels_table: MySQL only; nothing on PostgreSQL
-- (the create migration above already lists 'eylandoo').

-- 2025_10_19_094305_create_reseller_config_events_table
create table "reseller_config_events" ("id" bigserial not null primary key, "reseller_config_id" bigint not null, "type" varchar(255) not null, "meta" json null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);
alter table "reseller_config_events" add constraint "reseller_config_events_reseller_config_id_foreign" foreign key ("reseller_config_id") references "reseller_configs" ("id") on delete cascade;
create index "reseller_config_events_reseller_config_id_index" on "reseller_config_events" ("reseller_config_id");

-- 2025_11_01_000000_create_audit_logs_table
create table "audit_logs" ("id" bigserial not null primary key, "action" varchar(255) not null, "actor_type" varchar(255) null, "actor_id" bigint null, "target_type" varchar(255) not null, "target_id" bigint null, "reason" varchar(255) null, "request_id" varchar(255) null, "ip" varchar(255) null, "user_agent" varchar(255) null, "meta" json null, "created_at" timestamp(0) without time zone null, "updated_at" timestamp(0) without time zone null);
create index "audit_logs_action_index" on "audit_logs" ("action");
create index "audit_logs_target_type_target_id_index" on "audit_logs" ("target_type", "target_id");
create index "audit_logs_created_at_index" on "audit_logs" ("created_at");
