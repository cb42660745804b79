-- 0011_deliveries: what each recorded webhook delivery did, for
-- `kk project deliveries`, and an index for retention (by age).
--
-- outcome: started (flow_ids lists the flows, comma separated), no_branch
-- (no branch tracks the pushed repository branch), ignored (an event that
-- starts nothing); rows recorded before are filled in below where the old
-- columns tell.
-- duplicates counts the later deliveries with the same id (nothing started).
ALTER TABLE webhook_deliveries ADD COLUMN outcome    text    NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN flow_ids   text    NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN duplicates integer NOT NULL DEFAULT 0;
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received);

-- Deliveries recorded before: those with a flow started it.
UPDATE webhook_deliveries SET outcome = 'started', flow_ids = CAST(flow_id AS TEXT) WHERE flow_id IS NOT NULL;
UPDATE webhook_deliveries SET outcome = 'no_branch' WHERE flow_id IS NULL AND note LIKE 'no branch of project %';
