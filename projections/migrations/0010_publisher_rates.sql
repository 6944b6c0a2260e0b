-- A publisher's own rate limit. Publishers differ by orders of magnitude (a provincial lab system
-- against one hospital's), so the gateway's --publisher-rate/--publisher-burst are only the default:
-- a publisher registered with its own limit (`healthcode publishers add --rate N --burst N`) is held
-- to that instead. NULL: the gateway's default.
ALTER TABLE publisher
    ADD COLUMN events_per_second integer CHECK (events_per_second > 0),
    ADD COLUMN burst_events      integer CHECK (burst_events > 0),
    ADD CHECK ((events_per_second IS NULL) = (burst_events IS NULL));
