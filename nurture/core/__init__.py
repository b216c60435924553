"""The business of nurture, by domain, as plain functions over a SQLAlchemy session.

Core imports neither Flask nor Redis nor RQ (an import-linter contract says so). The domains are
layered, each may import the ones below it and the shared pieces at the bottom:

    delivery     sending, the scheduler's pass, SMTP, DKIM, rate limits, breaker, proofs
    campaigns    drips, broadcasts, job openings, enrolment, entries and exits, timing
    feedback     tracking, bounces, replies, ratings, analytics
      | content  templates, rendering, personalisation, MIME      (feedback and content are
                                                                    independent of each other)
    compliance   suppressions, unsubscribe, sender identity, preferences, erasure
    audience     candidates, search, segments, engagement
      | accounts users, roles, API tokens
    shared       errors, settings, addresses, tokens, csvfiles
"""
