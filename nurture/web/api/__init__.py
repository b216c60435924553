"""The JSON API under /api/v1: each module declares its operations on the one blueprint."""

from nurture.web.api import (
    abtests,  # noqa: F401 - adds the A/B subject test results to bp
    bounces,  # noqa: F401 - adds the bounce webhook to bp
    broadcasts,  # noqa: F401 - adds the broadcast routes to bp
    feedback,  # noqa: F401 - adds the feedback (answers, missing strengths) routes to bp
    imports,  # noqa: F401 - adds the import routes to bp
    openapi,  # noqa: F401 - adds the OpenAPI document to bp
    openings,  # noqa: F401 - adds the job-alert routes to bp
    pool,  # noqa: F401 - adds the talent-pool health routes to bp
    promptness,  # noqa: F401 - adds the rejection-promptness routes and metrics to bp
    referrals,  # noqa: F401 - adds the referral routes to bp
    replies,  # noqa: F401 - adds the replies inbox routes to bp
    segments,  # noqa: F401 - adds the segment routes to bp
    suppressions,  # noqa: F401 - adds the suppression-list routes to bp
    views,  # noqa: F401 - adds the candidate, campaign and ATS routes to bp
    webhooks,  # noqa: F401 - adds the outbound webhook routes to bp
)
from nurture.web.api.routes import bp

__all__ = ["bp"]
