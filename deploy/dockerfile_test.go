package deploy_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one instruction of a Dockerfile: its keyword in upper
// case and the rest of its (joined) lines.
type instruction struct {
	cmd, args string
}

// stage is one FROM of a Dockerfile and the instructions after it.
type stage struct {
	image, name string
	body        []instruction
}

// parseDockerfile splits a Dockerfile into stages: comments and empty
// lines dropped, lines ending with a backslash joined to the next.
func parseDockerfile(t *testing.T, text string) (args []instruction, stages []stage) {
	t.Helper()
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(rest)}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			s := stage{image: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
		case len(stages) == 0:
			args = append(args, in)
		default:
			stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
		}
	}
	return args, stages
}

// find returns the arguments of the instructions cmd of a stage.
func (s stage) find(cmd string) []string {
	var out []string
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t, readFile(t, "Dockerfile"))
	byName := make(map[string]stage)
	for _, s := range stages {
		byName[s.name] = s
	}
	build, setup, final := byName["build"], byName["setup"], stages[len(stages)-1]
	if !strings.HasPrefix(build.image, "golang:") {
		t.Errorf("build stage from %q, want golang", build.image)
	}
	checkGoVersion(t, args, build.image)
	built := false
	for _, r := range build.find("RUN") {
		if strings.Contains(r, "go build") && strings.Contains(r, "./examples/orderer") {
			built = true
			if !strings.Contains(r, "CGO_ENABLED=0") {
				t.Errorf("build: %q: want CGO_ENABLED=0 (a static binary for distroless)", r)
			}
		}
	}
	if !built {
		t.Error("build stage: no RUN go build ./examples/orderer")
	}
	if final.name != "orderer" || !(strings.HasPrefix(final.image, "gcr.io/distroless/static") || final.image == "scratch") {
		t.Errorf("last stage %s from %s: want the orderer on distroless/static or scratch, the default target", final.name, final.image)
	}
	checkRuntimeStage(t, final)
	if !slices.ContainsFunc(setup.find("RUN"), func(r string) bool { return strings.Contains(r, "openssl") }) {
		t.Error("setup stage: kafka-pki.sh needs openssl")
	}
	checkCopies(t, stages)
}

// checkGoVersion checks that the build stage's Go is the one go.mod asks.
func checkGoVersion(t *testing.T, args []instruction, image string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, filepath.Join(root, "go.mod")))
	version := strings.TrimPrefix(image, "golang:")
	for _, a := range args {
		if k, v, _ := strings.Cut(a.args, "="); a.cmd == "ARG" && version == "${"+k+"}" {
			version = v
		}
	}
	if m == nil || !strings.HasPrefix(version, m[1]) {
		t.Errorf("build stage Go %q, go.mod asks for %v", version, m)
	}
}

// checkRuntimeStage checks the orderer image: a non-root user, the binary
// as entrypoint, the documented ports and the ledger volume.
func checkRuntimeStage(t *testing.T, s stage) {
	t.Helper()
	users := s.find("USER")
	if len(users) == 0 {
		t.Error("orderer stage: no USER (distroless runs as root by default)")
	}
	for _, u := range users {
		if name, _, _ := strings.Cut(u, ":"); name == "root" || name == "0" {
			t.Errorf("orderer stage: USER %s", u)
		}
	}
	var ep []string
	if e := s.find("ENTRYPOINT"); len(e) != 1 || json.Unmarshal([]byte(e[0]), &ep) != nil || len(ep) != 1 || filepath.Base(ep[0]) != "orderer" {
		t.Errorf("orderer stage: ENTRYPOINT %v, want the exec form [\"/path/orderer\"]", e)
	}
	if got := strings.Join(s.find("EXPOSE"), " "); got != "7050 8443" {
		t.Errorf("orderer stage: EXPOSE %q, want 7050 (gRPC) 8443 (metrics)", got)
	}
	if got := strings.Join(s.find("VOLUME"), " "); !strings.Contains(got, "/var/lib/orderer") {
		t.Errorf("orderer stage: VOLUME %q, want /var/lib/orderer", got)
	}
}

// checkCopies checks that every COPY from the build context names files
// that exist and that the context's ignore file keeps, and that every
// COPY --from names an earlier stage.
func checkCopies(t *testing.T, stages []stage) {
	t.Helper()
	ignore := readFile(t, "Dockerfile.dockerignore")
	for _, must := range []string{"/orderer", ".git", "/deploy/generated"} {
		if !slices.Contains(strings.Fields(ignore), must) {
			t.Errorf("Dockerfile.dockerignore: %s not ignored", must)
		}
	}
	seen := make(map[string]bool)
	for _, s := range stages {
		for _, c := range s.find("COPY") {
			f := strings.Fields(c)
			var from string
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				if v, ok := strings.CutPrefix(f[0], "--from="); ok {
					from = v
				}
				f = f[1:]
			}
			switch {
			case from != "" && !seen[from]:
				t.Errorf("COPY %s: no earlier stage %s", c, from)
			case from == "":
				for _, src := range f[:len(f)-1] {
					if _, err := os.Stat(filepath.Join(root, src)); err != nil && src != "." {
						t.Errorf("COPY %s: %v", c, err)
					}
				}
			}
		}
		seen[s.name] = true
	}
}
