-- VPNMarket HEAD (81c4845) on top of c696ca1: the migrations after c696ca1 that touch
-- the tables usage-sync uses, as Laravel 12.33's MySqlGrammar emits them, in order.
-- The two raw ENUM statements are the migrations' own SQL (whitespace folded). Note
-- what they do besides widening: `resellers.type` gets DEFAULT 'traffic' (was 'plan'),
-- and `resellers.status` loses NOT NULL (MODIFY without NOT NULL makes it nullable).

-- 2025_11_05_152259_add_admin_forgiven_bytes_to_resellers_table
alter table `resellers` add `admin_forgiven_bytes` bigint unsigned not null default '0' after `traffic_used_bytes`;

-- 2025_11_09_151245_add_wallet_fields_to_resellers_table
alter table `resellers` add `billing_type` varchar(20) not null default 'traffic' after `type`;
alter table `resellers` add `wallet_balance` bigint not null default '0' after `billing_type`;
alter table `resellers` add `wallet_price_per_gb` int null after `wallet_balance`;

-- 2025_11_09_151308_create_reseller_usage_snapshots_table
create table `reseller_usage_snapshots` (`id` bigint unsigned not null auto_increment primary key, `reseller_id` bigint unsigned not null, `total_bytes` bigint not null default '0' comment 'Cumulative usage at measurement time', `measured_at` timestamp not null default CURRENT_TIMESTAMP) default character set utf8mb4 collate 'utf8mb4_unicode_ci' engine = InnoDB;
alter table `reseller_usage_snapshots` add constraint `reseller_usage_snapshots_reseller_id_foreign` foreign key (`reseller_id`) references `resellers` (`id`) on delete cascade;
alter table `reseller_usage_snapshots` add index `reseller_usage_snapshots_reseller_id_measured_at_index`(`reseller_id`, `measured_at`);

-- 2025_11_09_151419_add_suspended_wallet_status_to_resellers
ALTER TABLE resellers MODIFY COLUMN status ENUM('active', 'suspended', 'suspended_wallet') DEFAULT 'active';

-- 2025_11_09_171308_add_wallet_type_to_resellers_type_enum
ALTER TABLE `resellers` MODIFY COLUMN `type` ENUM('plan', 'traffic', 'wallet') NOT NULL DEFAULT 'traffic';
