"""What gets sent to whom and when: drips, broadcasts, job openings, enrolment, entries and exits,
send windows and the frequency cap."""
