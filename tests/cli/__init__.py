"""Every command in-process (CliRunner): output, exit codes, JSON documents, completion, hostile arguments."""
