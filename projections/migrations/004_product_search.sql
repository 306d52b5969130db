-- +goose Up
-- Product search (projections/postgres, products.v1): English stemming
-- that ignores accents. unaccent is a trusted extension, so a role with
-- CREATE on the database may create it; where it exists already,
-- wherever it lives, it is used as it is.
CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA projections;

-- The english configuration with unaccent before the stemmer, for the
-- words of every alphabet (hword, hword_part, word; the ascii kinds have
-- no accents). It lives here rather than in readmodel so that a rebuild,
-- which drops its shadow schema, never takes it along; to_tsvector with
-- a configuration named is immutable, which a generated column needs.
-- +goose StatementBegin
DO $$
DECLARE
    dict text;
BEGIN
    SELECT quote_ident(n.nspname) || '.unaccent' INTO dict
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    WHERE e.extname = 'unaccent';
    CREATE TEXT SEARCH CONFIGURATION projections.product_search (COPY = pg_catalog.english);
    EXECUTE format('ALTER TEXT SEARCH CONFIGURATION projections.product_search
        ALTER MAPPING FOR hword, hword_part, word WITH %s, pg_catalog.english_stem', dict);
END
$$;
-- +goose StatementEnd
