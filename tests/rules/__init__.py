"""The rules and the store on their own: model rules, request validation, media and MP4 parsing, statuses,
the poll schedule, the journal. No gateway, no CLI."""
