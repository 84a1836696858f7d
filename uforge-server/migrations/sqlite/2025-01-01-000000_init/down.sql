DROP TABLE recreated_packages;
DROP TABLE scans;
DROP TABLE machines;
DROP TABLE repos;
DROP TABLE users;
