"""Who nurture mails: candidates, finding them, segments (rules compiled to SQL), engagement."""
