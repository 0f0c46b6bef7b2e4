package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB uses; registered as "sqlite"
)

// setAsideOrphans moves away the SQLite files of databases that FerretDB
// created but never initialised. FerretDB makes a database's file, then its
// metadata table, in two steps; a crash in between (an agent killed while a
// restore creates a database) leaves a file without tables, and FerretDB
// then refuses to start at all ("no such table: _ferretdb_collections").
// Such a file holds no data: it is renamed, not deleted, and logged.
func setAsideOrphans(ctx context.Context, dir string, log *slog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sqlite"))
	if err != nil {
		return err
	}
	for _, f := range files {
		tables, err := countTables(ctx, f)
		if err != nil {
			return fmt.Errorf("embedded: check %s: %w", filepath.Base(f), err)
		}
		if tables > 0 {
			continue
		}
		aside := fmt.Sprintf("%s.orphan-%d", f, time.Now().Unix())
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(f+suffix, aside+suffix); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("embedded: set aside %s: %w", filepath.Base(f), err)
			}
		}
		log.Warn("set aside an uninitialised database file left by a crash", "file", filepath.Base(f), "now", filepath.Base(aside),
			"database", strings.TrimSuffix(filepath.Base(f), ".sqlite"))
	}
	return nil
}

func countTables(ctx context.Context, path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&n)
	return n, err
}
