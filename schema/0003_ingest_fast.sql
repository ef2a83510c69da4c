-- 0003_ingest_fast: cheaper ingest on the same data.
--
-- Ids are opaque keys: nothing reads them in a language's order, so they
-- compare byte-wise (COLLATE "C"), as memcmp, instead of through the
-- database's locale (strcoll per comparison in a database created with, say,
-- en_US.UTF-8 or C.UTF-8). Every id claim in cost_row_ids and every insert
-- into cost_rows' primary key (ts, id) compares ids about twenty times. Only
-- the indexes are rebuilt (no table rewrite); stored rows, claims and rollups
-- are unchanged, and equal ids stay equal, so resends of old rows are still
-- duplicates. The rebuild holds cost_rows and cost_row_ids locked while it
-- runs, so on a large database run `vgcollector migrate` in a quiet hour.
ALTER TABLE cost_row_ids ALTER COLUMN id TYPE text COLLATE "C";
ALTER TABLE cost_rows ALTER COLUMN id TYPE text COLLATE "C";

-- Every ingest transaction updates the hourly rollup's groups of the hour it
-- covers. With full pages each update is a new tuple on another page plus an
-- entry in both indexes, and the unique index fills with dead versions that
-- every later upsert must step over. Free room on each page lets the update
-- stay on its page as a HOT update (the indexed key never changes), which
-- adds no index entries and is pruned in place. Applies to pages written
-- from now on; existing pages keep their rows as they are.
ALTER TABLE cost_rollup_hourly SET (fillfactor = 50);
