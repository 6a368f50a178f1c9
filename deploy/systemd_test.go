package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// unitFile is a parsed systemd unit: section, then key, then the values
// in order (a key may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := make(unitFile)
	section := ""
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";")) {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		line := cur.String()
		cur.Reset()
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			u[section] = make(map[string][]string)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("unit: line %q is not KEY=VALUE in a section", line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	return u
}

// parseEnvFile reads a systemd EnvironmentFile: KEY=VALUE lines, comments.
func parseEnvFile(t *testing.T, text string) map[string]string {
	t.Helper()
	env := make(map[string]string)
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("env file: line %q is not KEY=VALUE", l)
		}
		env[k] = strings.Trim(v, `"`)
	}
	return env
}

var unitVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expandExec expands a command line as systemd does: a word that is
// ${NAME} alone becomes one argument, $NAME is split at white space
// (nothing when empty); %i is the instance, %% a percent sign. It returns
// the arguments and the variables used.
func expandExec(t *testing.T, line, instance string, env map[string]string) ([]string, map[string]bool) {
	t.Helper()
	line = strings.NewReplacer("%%", "%", "%i", instance).Replace(line)
	used := make(map[string]bool)
	var out []string
	for _, w := range strings.Fields(line) {
		m := unitVar.FindStringSubmatch(w)
		switch {
		case m == nil:
			out = append(out, w)
		case m[0] != w:
			t.Errorf("ExecStart: %q mixes a variable with text; keep each variable a word of its own", w)
		case m[1] != "":
			used[m[1]] = true
			out = append(out, env[m[1]])
		default:
			used[m[2]] = true
			out = append(out, strings.Fields(env[m[2]])...)
		}
	}
	return out, used
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, "systemd/orderer@.service"))
	svc := u["Service"]
	want := map[string]string{
		"EnvironmentFile": "/etc/orderer/%i.env",
		"ProtectSystem":   "strict",
		"NoNewPrivileges": "yes",
		"Restart":         "on-failure",
		"ReadWritePaths":  "/var/lib/orderer/%i",
		"StateDirectory":  "orderer/%i",
		"PrivateTmp":      "yes",
		"ProtectHome":     "yes",
	}
	for _, k := range sortedKeys(want) {
		if got := svc[k]; !slices.Equal(got, []string{want[k]}) {
			t.Errorf("[Service] %s=%v, want %s", k, got, want[k])
		}
	}
	if user := svc["User"]; svc["DynamicUser"] == nil && (len(user) != 1 || user[0] == "root" || user[0] == "0") {
		t.Errorf("[Service] User=%v: want a dedicated user (or DynamicUser=yes)", user)
	}
	if got := svc["CapabilityBoundingSet"]; !slices.Equal(got, []string{""}) {
		t.Errorf("[Service] CapabilityBoundingSet=%v, want empty: the node needs no capability", got)
	}
	if len(svc["ExecStart"]) != 1 {
		t.Fatalf("[Service] ExecStart=%v, want one", svc["ExecStart"])
	}
	env := parseEnvFile(t, readFile(t, "systemd/orderer0.env"))
	args, used := expandExec(t, svc["ExecStart"][0], "orderer0", env)
	if filepath.Base(args[0]) != "orderer" || args[1] != "start" {
		t.Fatalf("ExecStart runs %v, want orderer start", args[:2])
	}
	checkFlags(t, invocation{where: "orderer@.service with orderer0.env", sub: "start", args: args[2:]})
	for _, k := range sortedKeys(used) {
		if _, ok := env[k]; !ok {
			t.Errorf("ExecStart uses $%s, which orderer0.env does not define", k)
		}
	}
	for _, k := range sortedKeys(env) {
		if !used[k] {
			t.Errorf("orderer0.env defines %s, which ExecStart does not use", k)
		}
	}
	if data := flagValues(args[2:])["data"]; !slices.Equal(data, []string{"/var/lib/orderer/orderer0"}) {
		t.Errorf("ExecStart --data %v, want the state directory /var/lib/orderer/orderer0, the only writable path", data)
	}
	compose, _ := loadCompose(t)
	if got, want := flagSet(args[2:]), flagSet(compose.Services["orderer0"].Command[1:]); !slices.Equal(got, want) {
		t.Errorf("the unit's flags %v differ from the compose file's %v", got, want)
	}
}

// flagSet returns the sorted flag names of args, each once.
func flagSet(args []string) []string {
	names := flagNames(args)
	slices.Sort(names)
	return slices.Compact(names)
}

// TestSystemdAnalyze runs systemd-analyze verify on the unit, with the
// test's build of the orderer as the program, where systemd is installed.
func TestSystemdAnalyze(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	bin := ordererBin(t)
	text := strings.Replace(readFile(t, "systemd/orderer@.service"), "ExecStart=/usr/local/bin/orderer ", "ExecStart="+bin+" ", 1)
	unit := filepath.Join(t.TempDir(), "orderer@orderer0.service")
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
