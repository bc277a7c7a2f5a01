"""The domain: values (model), errors, time, send windows, recurrence, option declarations,
reply tokens. No I/O; imports nothing else of clerk."""
