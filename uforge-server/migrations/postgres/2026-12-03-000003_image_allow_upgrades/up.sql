-- Whether the build's tuning may upgrade, downgrade or remove packages of the source.
ALTER TABLE images ADD COLUMN allow_upgrades BOOLEAN NOT NULL DEFAULT FALSE;
