package kafkaconsensus_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/kafkaconsensus/kafkaconsensus"

// TestNoPublicPackageImportsInternal checks that no package a user can
// import depends, directly or not, on a package under internal/: only
// internal packages, examples and tests may. It asks the go command for the
// non-test dependencies of every package of the module.
func TestNoPublicPackageImportsInternal(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "list", "-json=ImportPath,Deps", "./...")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if !public(p.ImportPath) {
			continue
		}
		checked++
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/") && isInternal(d) {
				t.Errorf("%s imports %s: a public package must not depend on internal/", p.ImportPath, d)
			}
		}
	}
	if checked == 0 {
		t.Fatal("go list listed no public package")
	}
}

// public reports whether users may import the package at path: it is in
// the module, not under an internal/ folder and not under examples/.
func public(path string) bool {
	if path != module && !strings.HasPrefix(path, module+"/") {
		return false
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	return !isInternal(path) && rel != "examples" && !strings.HasPrefix(rel, "examples/")
}

func isInternal(path string) bool {
	for _, elem := range strings.Split(path, "/") {
		if elem == "internal" {
			return true
		}
	}
	return false
}
