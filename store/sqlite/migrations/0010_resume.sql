-- Where the attempts of a pipeline with resume: true got to
-- (conveyor.Execution.ResumeStep and Checkpoint): the step that began
-- last (0: none, or a handler's) and the checkpoint it recorded last, JSON
-- text (NULL: none).
ALTER TABLE executions ADD COLUMN resume_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN checkpoint TEXT;
