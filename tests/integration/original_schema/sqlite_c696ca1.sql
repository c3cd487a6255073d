-- VPNMarket at c696ca1: the tables usage-sync reads and writes, as Laravel 12.33's
-- SQLiteGrammar emits them: enums are varchar with a CHECK, json is text (no
-- use_native_json), timestamps are datetime, booleans tinyint(1), and added columns
-- go last. Laravel turns foreign keys on for SQLite connections; do the same.
-- `users` is the Laravel 12 default shape; the app's extra user columns are left out.
--
-- `resellers` and `reseller_configs` are written in their final c696ca1 shape. Laravel
-- rebuilds a SQLite table (create __temp__, copy, drop, rename) whenever a migration
-- adds a foreign key to it or ->change()s a column, and both were rebuilt
-- (2025_10_19_110100, 2025_10_19_120000, 2025_10_19_133047). The rebuild copies each
-- column's declared type from PRAGMA table_xinfo, which has no CHECK, so on a real
-- Laravel SQLite database these two tables have NO enum CHECKs (only `panels` keeps
-- its one). The CHECKs are kept here on purpose, to match MySQL's ENUMs, and
-- reseller_configs.panel_type includes 'eylandoo', which the app adds on MySQL only.

-- 0001_01_01_000000_create_users_table
create table "users" ("id" integer primary key autoincrement not null, "name" varchar not null, "email" varchar not null, "email_verified_at" datetime, "password" varchar not null, "remember_token" varchar, "created_at" datetime, "updated_at" datetime);
create unique index "users_email_unique" on "users" ("email");

-- 2025_09_10_174918_create_settings_table
create table "settings" ("id" integer primary key autoincrement not null, "key" varchar not null, "value" text, "created_at" datetime, "updated_at" datetime);
create unique index "settings_key_unique" on "settings" ("key");

-- 2025_09_18_040336_add_xui_link_type_to_settings_table (SQLite keeps no comments)
alter table "settings" add column "xui_link_type" varchar not null default 'single';

-- 2025_10_18_201441_create_panels_table
create table "panels" ("id" integer primary key autoincrement not null, "name" varchar not null, "url" varchar not null, "panel_type" varchar check ("panel_type" in ('marzban', 'marzneshin', 'xui', 'v2ray', 'eylandoo', 'other')) not null default 'marzban', "username" varchar, "password" text, "api_token" text, "extra" text, "is_active" tinyint(1) not null default '1', "created_at" datetime, "updated_at" datetime);

-- 2025_10_19_094301_create_resellers_table + 110100 (panel_id) + 120000 (unsigned,
-- a no-op on SQLite) + 2025_10_20_141640 (config_limit) + 2025_11_04_181502
create table "resellers" ("id" integer primary key autoincrement not null, "user_id" integer not null, "type" varchar check ("type" in ('plan', 'traffic')) not null default 'plan', "status" varchar check ("status" in ('active', 'suspended')) not null default 'active', "username_prefix" varchar, "traffic_total_bytes" integer, "traffic_used_bytes" integer not null default '0', "window_starts_at" datetime, "window_ends_at" datetime, "marzneshin_allowed_service_ids" text, "settings" text, "created_at" datetime, "updated_at" datetime, "panel_id" integer, "config_limit" integer, "eylandoo_allowed_node_ids" text, foreign key("user_id") references "users"("id") on delete cascade, foreign key("panel_id") references "panels"("id") on delete set null);
create unique index "resellers_user_id_unique" on "resellers" ("user_id");

-- 2025_10_19_094304_create_reseller_configs_table + 133047 (subscription_url,
-- panel_id) + 2025_10_20_135432 (comment) + 2025_11_03_233327 (meta)
-- + 2025_11_04_072100 (prefix, custom_name) + 2025_11_04_175304 (connections)
create table "reseller_configs" ("id" integer primary key autoincrement not null, "reseller_id" integer not null, "external_username" varchar not null, "traffic_limit_bytes" integer not null, "usage_bytes" integer not null default '0', "expires_at" datetime not null, "status" varchar check ("status" in ('active', 'disabled', 'expired', 'deleted')) not null default 'active', "panel_type" varchar check ("panel_type" in ('marzban', 'marzneshin', 'xui', 'eylandoo')) not null, "panel_user_id" varchar, "created_by" integer not null, "disabled_at" datetime, "deleted_at" datetime, "created_at" datetime, "updated_at" datetime, "subscription_url" varchar, "panel_id" integer, "comment" varchar, "meta" text, "prefix" varchar, "custom_name" varchar, "connections" integer, foreign key("reseller_id") references "resellers"("id") on delete cascade, foreign key("created_by") references "users"("id"), foreign key("panel_id") references "panels"("id") on delete set null);
create index "reseller_configs_reseller_id_status_index" on "reseller_configs" ("reseller_id", "status");

-- 2025_10_19_094305_create_reseller_config_events_table
create table "reseller_config_events" ("id" integer primary key autoincrement not null, "reseller_config_id" integer not null, "type" varchar not null, "meta" text, "created_at" datetime, "updated_at" datetime, foreign key("reseller_config_id") references "reseller_configs"("id") on delete cascade);
create index "reseller_config_events_reseller_config_id_index" on "reseller_config_events" ("reseller_config_id");

-- 2025_11_01_000000_create_audit_logs_table
create table "audit_logs" ("id" integer primary key autoincrement not null, "action" varchar not null, "actor_type" varchar, "actor_id" integer, "target_type" varchar not null, "target_id" integer, "reason" varchar, "request_id" varchar, "ip" varchar, "user_agent" varchar, "meta" text, "created_at" datetime, "updated_at" datetime);
create index "audit_logs_action_index" on "audit_logs" ("action");
create index "audit_logs_target_type_target_id_index" on "audit_logs" ("target_type", "target_id");
create index "audit_logs_created_at_index" on "audit_logs" ("created_at");
