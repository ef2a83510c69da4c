-- 0023_period_rated_price: the FOCUS export's x_RatedPrice (the rate card's
-- price of the rows, the rollups' rated_price_usd) frozen with each closed
-- month's lines.
--
-- A closed month's export stays byte for byte what it was at its close. So a
-- month closed before this migration keeps its columns (no x_RatedPrice) and
-- its lines keep no rated price (NULL): x_rated_price false says so. Months
-- closed from now on freeze the rated price and export the column.
--
-- The rule for late rows in a month closed before this migration: its lines
-- billed no rated price, so the rated price of their line keys counts as
-- billed in full, and a Correction line for such a key carries a rated delta
-- of 0 (a key those lines never billed carries its whole rated price).
ALTER TABLE billing_period_lines ADD COLUMN rated_price_usd numeric;

-- false for the months closed before now; a close from now on sets true.
ALTER TABLE billing_periods ADD COLUMN x_rated_price boolean NOT NULL DEFAULT false;
ALTER TABLE billing_periods ALTER COLUMN x_rated_price SET DEFAULT true;
