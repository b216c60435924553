"""What a mail says: templates (starter files and edited ones), sandboxed rendering,
personalisation and the MIME message."""
