-- At most one unfinished scan per machine, so that concurrent `POST /scans` for one machine
-- cannot start several. Older duplicates left by earlier versions are dropped first: the
-- newest is the one the server has handed out since.
DELETE FROM scans
WHERE status <> 'complete'
  AND id < (SELECT MAX(s.id) FROM scans s
            WHERE s.machine_id = scans.machine_id AND s.status <> 'complete');
CREATE UNIQUE INDEX scans_one_unfinished ON scans(machine_id) WHERE status <> 'complete';
