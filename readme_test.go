package kafkaconsensus

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// snippet is a Go block of the README marked as taken from a file:
//
//	<!-- from path/to/file_test.go -->
//	```go
//	...
//	```
var snippet = regexp.MustCompile("(?s)<!-- from (\\S+) -->\n```go\n(.*?)```")

// TestReadmeSnippets checks that every marked Go block of the README is
// code of the example or test it names: each of its lines, comments
// alone aside, is a line of that file, in the same order. So the README
// shows code that compiles and runs in go test.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	found := snippet.FindAllStringSubmatch(string(readme), -1)
	if len(found) == 0 {
		t.Fatal("no marked snippet in README.md")
	}
	for _, m := range found {
		path, code := m[1], m[2]
		src, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("README snippet from %s: %v", path, err)
			continue
		}
		lines := trimmed(string(src))
		at := 0
		for _, want := range trimmed(code) {
			if strings.HasPrefix(want, "//") {
				continue
			}
			for at < len(lines) && lines[at] != want {
				at++
			}
			if at == len(lines) {
				t.Errorf("README snippet from %s: line %q is not in the file (after the lines before it)", path, want)
				break
			}
			at++
		}
	}
}

func trimmed(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
