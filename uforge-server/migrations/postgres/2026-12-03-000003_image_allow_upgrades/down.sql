ALTER TABLE images DROP COLUMN allow_upgrades;
