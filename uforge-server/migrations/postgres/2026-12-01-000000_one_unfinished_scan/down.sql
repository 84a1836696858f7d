DROP INDEX scans_one_unfinished;
