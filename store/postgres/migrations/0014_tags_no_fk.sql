-- Tag rows without a foreign key to their execution. Checking it was a
-- lookup of the execution per tag row, 64-69 ms of the ~290 ms that
-- PostgreSQL spent inserting a batch of 10,000 members with two tags
-- each. Tag rows are written only by the statement that inserts their
-- executions, and deleteExecutions deletes them before the executions,
-- by the index execution_tags_num.
ALTER TABLE execution_tags DROP CONSTRAINT execution_tags_num_fkey;
