package main_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/conveyor-run/conveyor/store/postgres/pgtest"
)

// TestMigrateSaysWhatItApplied: on an empty database migrate names every
// migration it applied and the version reached; run again, it says the
// database is up to date.
func TestMigrateSaysWhatItApplied(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.NewDatabase(t)
	files, err := filepath.Glob("../../store/postgres/migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(filepath.Base(f), ".sql")
	}

	for _, want := range []string{
		fmt.Sprintf("applied %s: now at version %d\n", strings.Join(names, ", "), len(names)),
		fmt.Sprintf("up to date at version %d\n", len(names)),
	} {
		out, err := exec.CommandContext(t.Context(), binary, "migrate", "--database-url", dbURL).CombinedOutput()
		if err != nil || string(out) != want {
			t.Fatalf("conveyor migrate: %v, output %q, want %q", err, out, want)
		}
	}
}
