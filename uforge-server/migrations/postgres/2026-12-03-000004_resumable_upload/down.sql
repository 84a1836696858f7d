DROP TABLE scan_blobs;
