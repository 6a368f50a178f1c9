package ingressbench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// This file is the plumbing of the child processes: how the harness
// starts them (the running binary again, with roleEnv naming the role),
// and how it talks to them: one JSON value per message on the child's
// stdin and stdout. A child ends when its stdin is closed.

// roleEnv names the role of a child process; a process without it is the
// orderer.
const roleEnv = "KAFKACONSENSUS_INGRESSBENCH_ROLE"

// The roles of the child processes.
const (
	roleKafka   = "kafka"   // the embedded Kafka brokers
	rolePeers   = "peers"   // the ordering nodes other than the measured one
	roleClients = "clients" // the Broadcast clients
)

// RunChild runs the role of a child process of the harness and reports
// that the process is one, with the role's error; it returns false at
// once in any other process. A program that uses the harness calls it
// first thing in main (a test binary, in TestMain) and exits when it
// reports true:
//
//	if child, err := ingressbench.RunChild(); child {
//		if err != nil {
//			log.Fatal(err)
//		}
//		return
//	}
func RunChild() (bool, error) {
	role := os.Getenv(roleEnv)
	if role == "" {
		return false, nil
	}
	dec, enc := json.NewDecoder(os.Stdin), json.NewEncoder(os.Stdout)
	var err error
	switch role {
	case roleKafka:
		err = runKafka(dec, enc)
	case rolePeers:
		err = runPeers(dec, enc)
	case roleClients:
		err = runClients(dec, enc)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		return true, fmt.Errorf("ingressbench %s: %w", role, err)
	}
	return true, nil
}

// reply is every answer of a child: Err, when not empty, says why it
// failed; the other fields are those of the request answered.
type reply struct {
	Err     string   `json:",omitempty"`
	Addrs   []string `json:",omitempty"` // kafka: the brokers' addresses
	Signed  int      `json:",omitempty"` // clients: envelopes signed
	Acked   int      `json:",omitempty"` // clients: answers SUCCESS
	Refused int      `json:",omitempty"` // clients: other answers
	Info    string   `json:",omitempty"` // clients: the first other answer
}

// answer sends err as a reply when it is not nil, and returns it.
func answer(enc *json.Encoder, err error) error {
	if err != nil {
		_ = enc.Encode(reply{Err: err.Error()})
	}
	return err
}

// waitEOF returns once the harness closes the child's stdin.
func waitEOF(dec *json.Decoder) {
	var v json.RawMessage
	for dec.Decode(&v) == nil {
	}
}

// child is a child process as the harness sees it.
type child struct {
	role string
	cmd  *exec.Cmd
	in   io.WriteCloser
	enc  *json.Encoder
	dec  *json.Decoder
}

// spawn starts the running binary again as role, sends it spec and
// returns once it answered (the answer is filled in r).
func spawn(role string, spec any, r *reply) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s process: %w", role, err)
	}
	c := &child{role: role, cmd: cmd, in: in, enc: json.NewEncoder(in), dec: json.NewDecoder(out)}
	if err := c.call(spec, r); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// call sends req to the child and waits for its reply.
func (c *child) call(req any, r *reply) error {
	if err := c.enc.Encode(req); err != nil {
		return fmt.Errorf("%s process: %w", c.role, err)
	}
	*r = reply{}
	if err := c.dec.Decode(r); err != nil {
		return fmt.Errorf("%s process: no answer: %w", c.role, err)
	}
	if r.Err != "" {
		return fmt.Errorf("%s process: %s", c.role, r.Err)
	}
	return nil
}

// close closes the child's stdin, which ends it, and waits for it to
// exit, killing it after 20 seconds.
func (c *child) close() {
	_ = c.in.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
