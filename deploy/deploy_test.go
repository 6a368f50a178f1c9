// Package deploy_test checks the deployment kit of this folder with what
// runs on one machine without Docker or Kafka: the Dockerfile, the compose
// file and the systemd unit parse and say what the operations guide says;
// every orderer flag they, the scripts and the guide use exists; every
// variable they read is defined; the set-up scripts make every file the
// compose file and the unit point at, with certificates that chain and
// name the right principals; and rehearse.sh runs the guide's procedures
// against the embedded Kafka.
package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// root is the repository's root, relative to this package.
const root = ".."

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	helpMu    sync.Mutex
	helpCache = make(map[string]map[string]bool)
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// ordererBin builds the orderer program once for the package's tests and
// returns its path.
func ordererBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "deploy-test-"); buildErr != nil {
			return
		}
		cmd := exec.Command(goTool(), "build", "-o", filepath.Join(buildDir, "orderer"), "./examples/orderer")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./examples/orderer: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "orderer")
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// subcommands are the orderer's subcommands.
var subcommands = []string{"kafka", "cryptogen", "genesis", "start", "broadcast", "deliver"}

var (
	helpFlag = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)
	flagName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
)

// flagsOf returns the flags of an orderer subcommand, from its --help.
func flagsOf(t *testing.T, sub string) map[string]bool {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if f, ok := helpCache[sub]; ok {
		return f
	}
	var stderr bytes.Buffer
	cmd := exec.Command(ordererBin(t), sub, "--help")
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("orderer %s --help: %v\n%s", sub, err, stderr.String())
	}
	flags := make(map[string]bool)
	for _, m := range helpFlag.FindAllStringSubmatch(stderr.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("orderer %s --help lists no flag:\n%s", sub, stderr.String())
	}
	helpCache[sub] = flags
	return flags
}

// invocation is one command line of the orderer program found in a file
// of the kit: the subcommand and its arguments.
type invocation struct {
	where string // file and what in it
	sub   string
	args  []string
}

// flagNames returns the flags of args: --name, -name, --name=value.
func flagNames(args []string) []string {
	var names []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") || a == "-" || a == "--" {
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, _ = strings.Cut(name, "=")
		if flagName.MatchString(name) {
			names = append(names, name)
		}
	}
	return names
}

// flagValues returns the value of each flag of args, as "--name value" or
// "--name=value"; a flag given several times keeps every value.
func flagValues(args []string) map[string][]string {
	vals := make(map[string][]string)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		if n, v, ok := strings.Cut(name, "="); ok {
			vals[n] = append(vals[n], v)
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			vals[name] = append(vals[name], args[i+1])
			i++
		} else {
			vals[name] = append(vals[name], "")
		}
	}
	return vals
}

// checkFlags fails for every flag of inv that its subcommand lacks.
func checkFlags(t *testing.T, inv invocation) {
	t.Helper()
	known := flagsOf(t, inv.sub)
	for _, f := range flagNames(inv.args) {
		if !known[f] {
			t.Errorf("%s: orderer %s has no flag --%s", inv.where, inv.sub, f)
		}
	}
}

// readFile returns the text of a file of the repository (path relative to
// this folder).
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shellWords splits a shell command line into words: quotes group and are
// removed, a backslash escapes the next character. Expansions stay as
// they are. It is enough for the kit's own scripts, not a shell.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// logicalLines joins the lines of a shell text that end with a backslash
// to the next, and drops comments that take a whole line.
func logicalLines(text string) []string {
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		out = append(out, cur.String())
		cur.Reset()
	}
	return out
}

// isProgram reports whether a shell word names the orderer program.
func isProgram(w string) bool {
	switch w {
	case "orderer", "$ORDERER", "${ORDERER}", "/tmp/orderer":
		return true
	}
	return strings.HasSuffix(w, "/bin/orderer")
}

// shellInvocations returns the orderer command lines of a shell text: a
// word naming the program, a subcommand, and the words up to the end of
// the command (a pipe, a redirection, &&, ||, ; or &).
func shellInvocations(where, text string) []invocation {
	var out []invocation
	for n, line := range logicalLines(text) {
		words := shellWords(line)
		for i := 0; i+1 < len(words); i++ {
			if !isProgram(words[i]) || !isSubcommand(words[i+1]) {
				continue
			}
			inv := invocation{where: fmt.Sprintf("%s (command %d)", where, n+1), sub: words[i+1]}
			for _, w := range words[i+2:] {
				if w != "" && strings.ContainsAny(w[:1], "|;&><)") || strings.HasPrefix(w, "2>") {
					break
				}
				inv.args = append(inv.args, w)
			}
			out = append(out, inv)
		}
	}
	return out
}

func isSubcommand(w string) bool {
	for _, s := range subcommands {
		if s == w {
			return true
		}
	}
	return false
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// scriptSettings returns the settings a kit script documents and reads:
// its lines `: "${NAME:=default}"`.
func scriptSettings(text string) map[string]string {
	re := regexp.MustCompile(`(?m)^: "\$\{([A-Z_][A-Z0-9_]*):=([^}]*)\}"`)
	out := make(map[string]string)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestShellInvocations checks the parser the other tests rely on.
func TestShellInvocations(t *testing.T) {
	got := shellInvocations("x", "\"$ORDERER\" start --listen \"$(grpc 0)\" \\\n  --peers a,b >>log 2>&1 &\n# orderer kafka --nope\norderer0 start\nfoo | /usr/local/bin/orderer genesis -o 'x y' && ls -l\n")
	if len(got) != 2 {
		t.Fatalf("got %d invocations, want 2: %+v", len(got), got)
	}
	if got[0].sub != "start" || strings.Join(flagNames(got[0].args), ",") != "listen,peers" {
		t.Errorf("first: %+v", got[0])
	}
	if got[1].sub != "genesis" || strings.Join(got[1].args, "|") != "-o|x y" {
		t.Errorf("second: %+v", got[1])
	}
	if v := flagValues([]string{"--a=1", "--b", "2", "--c", "--a", "3"}); strings.Join(v["a"], ",") != "1,3" || v["b"][0] != "2" || v["c"][0] != "" {
		t.Errorf("flagValues: %v", v)
	}
}
