-- The highest seq the node running an execution's attempt may have
-- published without storing it (conveyor.SeqReservation): a rescue's
-- event comes after it.
ALTER TABLE executions ADD COLUMN seq_reserved bigint NOT NULL DEFAULT 0;
