//go:build !unix

package ledger

import (
	"fmt"
	"os"
)

// lockFile opens path as the lock file. Platforms without flock get no
// protection against two processes opening the same directory.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ledger: opening lock file: %w", err)
	}
	return f, nil
}

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) error { return nil }
