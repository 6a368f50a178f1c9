package deploy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRehearse runs scripts/rehearse.sh, the guide's procedures against
// the embedded Kafka on 127.0.0.1, with the test's build of the orderer.
func TestRehearse(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Kafka and four nodes as child processes")
	}
	for _, tool := range []string{"bash", "sh", "openssl", "curl", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: %v", tool, err)
		}
	}
	bin := ordererBin(t)
	port := freePortRange(t, 30)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	work := filepath.Join(t.TempDir(), "rehearsal")
	cmd := exec.CommandContext(ctx, "bash", filepath.Join("scripts", "rehearse.sh"))
	cmd.Env = append(os.Environ(), "ORDERER="+bin, "WORK="+work, fmt.Sprintf("PORT=%d", port), "ENVELOPES=500", "TIMEOUT=30")
	// The script and everything it starts form a process group, which a
	// timeout ends whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rehearse: done") {
		t.Fatalf("rehearse.sh: %v\n%s", err, out)
	}
	for _, want := range []string{"nodes 0 1 2 agree", "nodes 0 1 2 3 agree"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rehearse.sh did not print %q:\n%s", want, out)
		}
	}
}

// freePortRange returns a port p such that p .. p+n-1 are free on
// 127.0.0.1 now.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if base+n > 65535 {
			continue
		}
		free := true
		var held []net.Listener
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				free = false
				continue
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if free {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports on 127.0.0.1", n)
	return 0
}
