package postgres

// appendSQL appends a batch in one statement, so an append costs one round
// trip. It returns the stream's version before the append and the last
// inserted row's (version, tx_id, id); when the expected version
// ($2: -2 any, -1 no stream, -4 stream exists, n ≥ 0 exact) does not hold
// it inserts nothing and the last three are NULL. A concurrent append of
// the same version or event id fails on the unique constraints.
const appendSQL = appendHead + `
    SELECT b.event_id, $1, ok.v + b.n, b.type, b.schema_version, b.data::json,
           b.correlation, b.causation, b.actor, b.created
      FROM ok, unnest($3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
               WITH ORDINALITY AS b(event_id, type, schema_version, data, correlation, causation, actor, created, n)
     ORDER BY b.n` + appendTail

// appendOneSQL is appendSQL for the common single-event append, with
// scalar parameters but the ids: fewer arrays to encode and no unnest.
const appendOneSQL = appendHead + `
    SELECT ($3::uuid[])[1], $1, ok.v + 1, $4::text, $5::int, $6::text::json, $7::text, $8::text, $9::text, $10::timestamptz
      FROM ok` + appendTail

// appendHead and appendTail surround the rows an append inserts: the
// stream's current version, the expected-version check, and the result.
const appendHead = `
WITH cur AS (
    SELECT coalesce(max(version), -1) AS v FROM events WHERE stream_id = $1
), ok AS (
    SELECT v FROM cur
     WHERE $2::bigint = -2 OR ($2 = -1 AND v = -1) OR ($2 = -4 AND v >= 0) OR $2 = v
), ins AS (
    INSERT INTO events (event_id, stream_id, version, type, schema_version, data,
                        correlation_id, causation_id, actor_id, created_at)`

const appendTail = `
    RETURNING version, tx_id, id
)
SELECT (SELECT v FROM cur), max(version), max(tx_id), max(id) FROM ins`

// writtenSQL says whether the event ids $3 are already written, in order,
// as one run of stream $1 that an append with expected version $2 could
// have written (a retry): found, with that run's last (version, tx_id, id).
// reused says some of the ids exist at all.
const writtenSQL = `
WITH batch AS (
    SELECT b.n, e.stream_id, e.version, e.tx_id, e.id
      FROM unnest($3::uuid[]) WITH ORDINALITY AS b(event_id, n)
      LEFT JOIN events e ON e.event_id = b.event_id
), first AS (
    SELECT version AS v FROM batch WHERE n = 1 AND stream_id = $1
), counted AS (
    SELECT count(*) FILTER (WHERE b.stream_id = $1 AND b.version = f.v + b.n - 1) = cardinality($3::uuid[]) AS run,
           count(b.stream_id) > 0 AS reused,
           max(f.v) AS v
      FROM batch b LEFT JOIN first f ON true
), verdict AS (
    SELECT coalesce(c.run AND ($2::bigint = -2 OR ($2 = -1 AND c.v = 0) OR ($2 = -4 AND c.v > 0) OR $2 = c.v - 1), false) AS found,
           c.reused
      FROM counted c
)
SELECT v.found, v.reused, l.version, l.tx_id, l.id
  FROM verdict v
  LEFT JOIN batch l ON v.found AND l.n = cardinality($3::uuid[])`

// appendGroupSQL is appendSQL across streams and across appends, in one
// statement and so one transaction. $1, $2 and $3 are the parts' streams,
// expected versions and members (1-based): a member is one append, of one
// stream or several, whose parts commit all or none. Each event names its
// part ($4, 1-based across all members) and its place in that part ($5,
// 1-based). Each part's current version is read first; a member inserts
// its events only if every one of its parts' conditions holds, whatever
// the other members find. It returns, per part in order, the stream's
// version before the statement and its last inserted row's (version,
// tx_id, id), NULL when that part's member inserted nothing.
const appendGroupSQL = `
WITH cur AS (
    SELECT p.k, p.g, p.stream_id,
           (SELECT coalesce(max(e.version), -1) FROM events e WHERE e.stream_id = p.stream_id) AS v,
           p.expected
      FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY AS p(stream_id, expected, g, k)
), ok AS (
    SELECT g FROM cur
     GROUP BY g
    HAVING bool_and(expected = -2 OR (expected = -1 AND v = -1) OR (expected = -4 AND v >= 0) OR expected = v)
), ins AS (
    INSERT INTO events (event_id, stream_id, version, type, schema_version, data,
                        correlation_id, causation_id, actor_id, created_at)
    SELECT b.event_id, c.stream_id, c.v + b.n, b.type, b.schema_version, b.data::json,
           b.correlation, b.causation, b.actor, b.created
      FROM unnest($4::int[], $5::int[], $6::uuid[], $7::text[], $8::int[], $9::text[], $10::text[], $11::text[], $12::text[], $13::timestamptz[])
               WITH ORDINALITY AS b(part, n, event_id, type, schema_version, data, correlation, causation, actor, created, i)
      JOIN cur c ON c.k = b.part
      JOIN ok ON ok.g = c.g
     ORDER BY b.i
    RETURNING stream_id, version, tx_id, id
)
SELECT c.v, max(i.version), max(i.tx_id), max(i.id)
  FROM cur c LEFT JOIN ins i ON i.stream_id = c.stream_id
 GROUP BY c.k, c.v
 ORDER BY c.k`
