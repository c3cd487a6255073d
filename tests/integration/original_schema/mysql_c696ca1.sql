-- VPNMarket at c696ca1: the tables usage-sync reads and writes, as Laravel 12.33's
-- MySqlGrammar emits them (DB_CONNECTION=mysql, charset utf8mb4, collation
-- utf8mb4_unicode_ci; `engine = InnoDB` is what Laravel appends when the connection's
-- `engine` option is set: the app leaves it null and gets the server default, InnoDB).
-- Statements are in migration order; each group names the migration it comes from.
-- `users` is the Laravel 12 default shape; the app's extra user columns are left out.
-- On MariaDB `json` is an alias of LONGTEXT with a json_valid() CHECK, and the text is
-- stored verbatim; MySQL 8 (what install.sh deploys) stores binary JSON and returns it
-- normalised, so code must parse `meta` rather than compare its text.

-- 0001_01_01_000000_create_users_table
create table `users` (`id` bigint unsigned not null auto_increment primary key, `name` varchar(255) not null, `email` varchar(255) not null, `email_verified_at` timestamp null, `password` varchar(255) not null, `remember_token` varchar(100) null, `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
alter table `users` add unique `users_email_unique`(`email`);

-- 2025_09_10_174918_create_settings_table
create table `settings` (`id` bigint unsigned not null auto_increment primary key, `key` varchar(255) not null, `value` text null, `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
alter table `settings` add unique `settings_key_unique`(`key`);

-- 2025_09_18_040336_add_xui_link_type_to_settings_table
alter table `settings` add `xui_link_type` varchar(255) not null default 'single' comment 'نوع لینک تولید شده: single یا subscription';

-- 2025_10_18_201441_create_panels_table
create table `panels` (`id` bigint unsigned not null auto_increment primary key, `name` varchar(255) not null, `url` varchar(255) not null, `panel_type` enum('marzban', 'marzneshin', 'xui', 'v2ray', 'eylandoo', 'other') not null default 'marzban', `username` varchar(255) null, `password` text null, `api_token` text null, `extra` json null, `is_active` tinyint(1) not null default '1', `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;

-- 2025_10_19_094301_create_resellers_table
create table `resellers` (`id` bigint unsigned not null auto_increment primary key, `user_id` bigint unsigned not null, `type` enum('plan', 'traffic') not null default 'plan', `status` enum('active', 'suspended') not null default 'active', `username_prefix` varchar(255) null, `traffic_total_bytes` bigint null, `traffic_used_bytes` bigint not null default '0', `window_starts_at` timestamp null, `window_ends_at` timestamp null, `marzneshin_allowed_service_ids` json null, `settings` json null, `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
alter table `resellers` add constraint `resellers_user_id_foreign` foreign key (`user_id`) references `users` (`id`) on delete cascade;
alter table `resellers` add unique `resellers_user_id_unique`(`user_id`);

-- 2025_10_19_094304_create_reseller_configs_table
create table `reseller_configs` (`id` bigint unsigned not null auto_increment primary key, `reseller_id` bigint unsigned not null, `external_username` varchar(255) not null, `traffic_limit_bytes` bigint not null, `usage_bytes` bigint not null default '0', `expires_at` timestamp not null, `status` enum('active', 'disabled', 'expired', 'deleted') not null default 'active', `panel_type` enum('marzban', 'marzneshin', 'xui') not null, `panel_user_id` varchar(255) null, `created_by` bigint unsigned not null, `disabled_at` timestamp null, `deleted_at` timestamp null, `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
alter table `reseller_configs` add constraint `reseller_configs_reseller_id_foreign` foreign key (`reseller_id`) references `resellers` (`id`) on delete cascade;
alter table `reseller_configs` add constraint `reseller_configs_created_by_foreign` foreign key (`created_by`) references `users` (`id`);
alter table `reseller_configs` add index `reseller_configs_reseller_id_status_index`(`reseller_id`, `status`);

-- 2025_10_19_110100_add_panel_id_to_resellers_table
alter table `resellers` add `panel_id` bigint unsigned null after `username_prefix`;
alter table `resellers` add constraint `resellers_panel_id_foreign` foreign key (`panel_id`) references `panels` (`id`) on delete set null;

-- 2025_10_19_120000_change_reseller_traffic_columns_to_unsigned_big_integer
alter table `resellers` modify `traffic_total_bytes` bigint unsigned null;
alter table `resellers` modify `traffic_used_bytes` bigint unsigned not null default '0';

-- 2025_10_19_133047_add_subscription_url_and_panel_id_to_reseller_configs_table
alter table `reseller_configs` add `subscription_url` varchar(255) null after `panel_user_id`;
alter table `reseller_configs` add `panel_id` bigint unsigned null after `subscription_url`;
alter table `reseller_configs` add constraint `reseller_configs_panel_id_foreign` foreign key (`panel_id`) references `panels` (`id`) on delete set null;

-- 2025_10_20_135432_add_comment_to_reseller_configs_table
alter table `reseller_configs` add `comment` varchar(200) null after `external_username`;

-- 2025_10_20_141640_add_config_limit_to_resellers_table
alter table `resellers` add `config_limit` int unsigned null after `panel_id`;

-- 2025_11_03_233327_add_meta_to_reseller_configs_table
alter table `reseller_configs` add `meta` json null after `disabled_at`;

-- 2025_11_04_072100_add_prefix_and_custom_name_to_reseller_configs_table
alter table `reseller_configs` add `prefix` varchar(50) null after `comment`;
alter table `reseller_configs` add `custom_name` varchar(100) null after `prefix`;

-- 2025_11_04_175304_add_eylandoo_support_and_connections_to_reseller_configs_table
alter table `reseller_configs` add `connections` int null after `traffic_limit_bytes`;
ALTER TABLE reseller_configs MODIFY COLUMN panel_type ENUM('marzban', 'marzneshin', 'xui', 'eylandoo') NOT NULL;

-- 2025_11_04_181502_add_eylandoo_allowed_node_ids_to_resellers_table
alter table `resellers` add `eylandoo_allowed_node_ids` json null after `marzneshin_allowed_service_ids`;

-- 2025_11_04_183611_add_eylandoo_to_panels_table
ALTER TABLE panels MODIFY COLUMN panel_type ENUM('marzban', 'marzneshin', 'xui', 'v2ray', 'eylandoo', 'other') NOT NULL DEFAULT 'marzban';

-- 2025_10_19_094305_create_reseller_config_events_table
create table `reseller_config_events` (`id` bigint unsigned not null auto_increment primary key, `reseller_config_id` bigint unsigned not null, `type` varchar(255) not null, `meta` json null, `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci';
alter table `reseller_config_events` add constraint `reseller_config_events_reseller_config_id_foreign` foreign key (`reseller_config_id`) references `reseller_configs` (`id`) on delete cascade;
alter table `reseller_config_events` add index `reseller_config_events_reseller_config_id_index`(`reseller_config_id`);

-- 2025_11_01_000000_create_audit_logs_table
create table `audit_logs` (`id` bigint unsigned not null auto_increment primary key, `action` varchar(255) not null, `actor_type` varchar(255) null, `actor_id` bigint unsigned null, `target_type` varchar(255) not null, `target_id` bigint unsigned null, `reason` varchar(255) null, `request_id` varchar(255) null, `ip` varchar(255) null, `user_agent` varchar(255) null, `meta` json null, `created_at` timestamp null, `updated_at` timestamp null) default character set utf8mb4 collate 'utf8mb4_unicode_ci';
alter table `audit_logs` add index `audit_logs_action_index`(`action`);
alter table `audit_logs` add index `audit_logs_target_type_target_id_index`(`target_type`, `target_id`);
alter table `audit_logs` add index `audit_logs_created_at_index`(`created_at`);
