-- The event log. UNIQUE (stream_id, version) is the concurrency guard;
-- (tx_id, id) is the global order, see read.go.
CREATE TABLE events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id          bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    event_id       uuid NOT NULL,
    stream_id      text NOT NULL,
    version        bigint NOT NULL CHECK (version >= 0),
    type           text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 1),
    data           json NOT NULL,
    correlation_id text NOT NULL DEFAULT '',
    causation_id   text NOT NULL DEFAULT '',
    actor_id       text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
);

CREATE INDEX events_global_order ON events (tx_id, id);

-- es_append appends a batch in one statement, so an append costs one round
-- trip. It raises ES001 (wrong expected version, DETAIL = actual version)
-- and ES002 (event ids reused elsewhere); a retry of a batch already
-- written returns that batch's result without writing.
-- p_expected: -2 any, -1 no stream, -4 stream exists, n >= 0 exact.
CREATE FUNCTION es_append(
    p_stream text, p_expected bigint, p_ids uuid[], p_types text[], p_schema_versions integer[],
    p_data text[], p_correlation text[], p_causation text[], p_actor text[], p_created timestamptz[]
) RETURNS TABLE (version bigint, tx_id bigint, id bigint)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_current bigint;
    v_first   bigint;
    v_matched integer;
    v_seen    integer;
    v_n       integer := cardinality(p_ids);
BEGIN
    SELECT count(*) INTO v_seen FROM events e WHERE e.event_id = ANY (p_ids);
    IF v_seen > 0 THEN
        SELECT e.version INTO v_first FROM events e WHERE e.event_id = p_ids[1] AND e.stream_id = p_stream;
        SELECT count(*) INTO v_matched
          FROM unnest(p_ids) WITH ORDINALITY AS b(event_id, n)
          JOIN events e ON e.event_id = b.event_id AND e.stream_id = p_stream AND e.version = v_first + b.n - 1;
        IF v_first IS NOT NULL AND v_matched = v_n AND
           (p_expected = -2 OR (p_expected = -1 AND v_first = 0) OR (p_expected = -4 AND v_first > 0) OR p_expected = v_first - 1) THEN
            RETURN QUERY SELECT e.version, e.tx_id, e.id FROM events e
                WHERE e.stream_id = p_stream AND e.version = v_first + v_n - 1;
            RETURN;
        END IF;
        IF v_first IS NULL OR v_matched <> v_seen THEN
            RAISE EXCEPTION 'event ids already used' USING ERRCODE = 'ES002';
        END IF;
    END IF;

    SELECT max(e.version) INTO v_current FROM events e WHERE e.stream_id = p_stream;
    v_current := coalesce(v_current, -1);
    IF NOT (p_expected = -2 OR (p_expected = -1 AND v_current = -1) OR (p_expected = -4 AND v_current >= 0)
            OR p_expected = v_current) THEN
        RAISE EXCEPTION 'wrong expected version' USING ERRCODE = 'ES001', DETAIL = v_current::text;
    END IF;

    RETURN QUERY
    WITH inserted AS (
    INSERT INTO events AS e (event_id, stream_id, version, type, schema_version, data,
                             correlation_id, causation_id, actor_id, created_at)
    SELECT b.event_id, p_stream, v_current + b.n, b.type, b.schema_version, b.data::json,
           b.correlation, b.causation, b.actor, b.created
      FROM unnest(p_ids, p_types, p_schema_versions, p_data, p_correlation, p_causation, p_actor, p_created)
           WITH ORDINALITY AS b(event_id, type, schema_version, data, correlation, causation, actor, created, n)
     ORDER BY b.n
    RETURNING e.version, e.tx_id, e.id
    )
    SELECT i.version, i.tx_id, i.id FROM inserted i ORDER BY i.version DESC LIMIT 1;
END;
$$;
