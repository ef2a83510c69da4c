-- 0025_reads_without_jit: the collector's database runs without JIT compilation.
--
-- Every statement the collector runs is short: an answer from the rollups
-- reads a few thousand rows in a few milliseconds. PostgreSQL compiles a
-- statement with LLVM once its estimated cost passes jit_above_cost
-- (100,000), and the estimate of a read that takes several days from the
-- hours (today, and the days late rows or unfolded deltas reopened) passes
-- it while the read itself takes 10 ms: the compilation alone took 79 ms of
-- a 160 ms all-tenant answer (measured, EXPLAIN ANALYZE's "JIT" line). So
-- the database the collector migrates gets jit = off, for new sessions.
-- A role that does not own the database cannot set this: the migration then
-- says so and goes on; set it yourself (ALTER DATABASE ... SET jit = off, or
-- ALTER ROLE <the collector's role> SET jit = off).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'jit stays on: this role does not own database %; run ALTER DATABASE % SET jit = off as its owner',
        current_database(), current_database();
END $$;
