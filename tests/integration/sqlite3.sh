#!/usr/bin/env bash
# The sqlite3 CLI builds a database of a few thousand rows and runs aggregate
# queries, with the system allocator and with libassay.so preloaded; the output
# must be identical.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"
require sqlite3 seq awk

sql="$WORK/workload.sql"
{
  echo "PRAGMA journal_mode=WAL;"
  echo "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT NOT NULL, grp INTEGER, val REAL, note TEXT);"
  echo "CREATE TABLE tag(item_id INTEGER REFERENCES item(id), tag TEXT);"
  echo "BEGIN;"
  seq 1 6000 | awk '{
    i = $1
    printf "INSERT INTO item VALUES(%d, %c%s-%05d%c, %d, %d.%02d, %c%s%c);\n", \
      i, 39, (i % 3 ? "widget" : "gadget"), (i * 7919) % 100000, 39, i % 17, (i * 37) % 1000, i % 100, \
      39, substr("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod", 1 + i % 40), 39
    printf "INSERT INTO tag VALUES(%d, %ctag%d%c);\n", i, 39, i % 23, 39
    if (i % 5 == 0) printf "INSERT INTO tag VALUES(%d, %cfive%c);\n", i, 39, 39
  }'
  echo "COMMIT;"
  cat <<'SQL'
CREATE INDEX item_grp ON item(grp);
CREATE INDEX tag_tag ON tag(tag);
.headers on
.mode list
SELECT count(*), sum(val), round(avg(val), 4), min(name), max(name) FROM item;
SELECT grp, count(*) AS n, round(sum(val), 2) AS total, max(length(note)) FROM item GROUP BY grp ORDER BY grp;
SELECT t.tag, count(*), round(avg(i.val), 3) FROM tag t JOIN item i ON i.id = t.item_id
  GROUP BY t.tag ORDER BY count(*) DESC, t.tag LIMIT 10;
SELECT substr(name, 1, 6) AS kind, count(DISTINCT grp), group_concat(id, ',') IS NOT NULL,
  length(group_concat(name, '|')) FROM item GROUP BY kind ORDER BY kind;
SELECT id, name, val, rank() OVER (PARTITION BY grp ORDER BY val DESC, id) AS r
  FROM item WHERE grp IN (3, 11) ORDER BY grp, r LIMIT 12;
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000)
  SELECT count(*), sum(x), sum(length(printf('%08d-%s', x, hex(x * 31)))) FROM n;
UPDATE item SET note = upper(note) || replace(note, ' ', '_') WHERE grp % 2 = 0;
DELETE FROM tag WHERE tag = 'five';
SELECT count(*), sum(length(note)) FROM item;
SELECT count(*) FROM tag;
CREATE TABLE copy AS SELECT * FROM item ORDER BY name DESC;
SELECT count(*), min(id), max(id), total(val) FROM copy;
VACUUM;
PRAGMA integrity_check;
SQL
} >"$sql"

echo "checking: sqlite3 CLI (6000 rows, indexes, joins, window functions, recursive CTE, VACUUM) gives identical output under assay"
run_both sqlite3 sqlite3 -bail -batch "$WORK/db.@MODE@" ".read $sql"
# The two databases must hold the same data (each dumped under its own allocator).
run_both sqlite3_dump bash -c 'sqlite3 -batch "$1" .dump | sha256sum' _ "$WORK/db.@MODE@"
echo "PASS: sqlite3"
