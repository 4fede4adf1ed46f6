-- When lablink posted the merge request note summarising a finished run (Unix ms); NULL while
-- none was posted. Written right after GitLab confirms the note so that a retried status
-- delivery does not post it again.
ALTER TABLE runs ADD COLUMN mr_note_posted_at BIGINT NULL;
