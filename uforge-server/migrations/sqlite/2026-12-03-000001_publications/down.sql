DROP TABLE publications;
DROP TABLE targets;
