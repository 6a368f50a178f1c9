package deploy_test

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
)

// composeFile is the part of the Compose Specification the kit uses.
type composeFile struct {
	Name     string
	Services map[string]service
	Volumes  map[string]any
}

type service struct {
	Image string
	Build *struct {
		Context, Dockerfile, Target string
	}
	Restart     string
	ReadOnly    bool `yaml:"read_only"`
	Hostname    string
	Command     []string
	Entrypoint  []string
	Environment map[string]string
	DependsOn   map[string]struct{ Condition string } `yaml:"depends_on"`
	Volumes     []string
	Ports       []string
	Networks    map[string]struct{ Aliases []string }
	SecurityOpt []string `yaml:"security_opt"`
	CapDrop     []string `yaml:"cap_drop"`
}

var (
	brokerNames  = []string{"kafka1", "kafka2", "kafka3"}
	ordererNames = []string{"orderer0", "orderer1", "orderer2"}
	oneShots     = []string{"orderer-crypto", "kafka-pki", "kafka-acls"}
)

var composeVar = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate does Compose's interpolation with an empty environment:
// $$ is $, ${NAME:-default} is its default. It returns the variables read,
// and fails for one without a default (which would need an .env file).
func interpolate(text string) (string, map[string]string, error) {
	vars := make(map[string]string)
	var errs []string
	out := composeVar.ReplaceAllStringFunc(text, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sm := composeVar.FindStringSubmatch(m)
		name := sm[1] + sm[4]
		if sm[2] == "" {
			errs = append(errs, fmt.Sprintf("%s has no default", name))
			return ""
		}
		vars[name] = sm[3]
		return sm[3]
	})
	if len(errs) > 0 {
		return "", nil, fmt.Errorf("compose.yaml: %s", strings.Join(errs, "; "))
	}
	return out, vars, nil
}

// loadCompose parses compose.yaml with the variables' defaults.
func loadCompose(t *testing.T) (*composeFile, map[string]string) {
	t.Helper()
	text, vars, err := interpolate(readFile(t, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal([]byte(text), &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return &c, vars
}

// kafkaProps turns the environment of an apache/kafka container into the
// broker properties its start-up writes: KAFKA_A_B is a.b, a double
// underscore an underscore, a triple one a dash; some variables are for
// the JVM, not properties.
func kafkaProps(env map[string]string) map[string]string {
	notProps := map[string]bool{"KAFKA_VERSION": true, "KAFKA_HEAP_OPTS": true, "KAFKA_LOG4J_OPTS": true, "KAFKA_OPTS": true,
		"KAFKA_JMX_OPTS": true, "KAFKA_JVM_PERFORMANCE_OPTS": true, "KAFKA_GC_LOG_OPTS": true, "KAFKA_LOG4J_ROOT_LOGLEVEL": true,
		"KAFKA_LOG4J_LOGGERS": true, "KAFKA_TOOLS_LOG4J_LOGLEVEL": true, "KAFKA_JMX_HOSTNAME": true, "KAFKA_JMX_PORT": true}
	props := make(map[string]string)
	for k, v := range env {
		if !strings.HasPrefix(k, "KAFKA_") || notProps[k] {
			continue
		}
		p := strings.ToLower(strings.TrimPrefix(k, "KAFKA_"))
		p = strings.ReplaceAll(p, "_", ".")
		p = strings.ReplaceAll(p, "...", "-")
		p = strings.ReplaceAll(p, "..", "_")
		props[p] = v
	}
	return props
}

// principalOf applies Kafka's ssl.principal.mapping.rules to a
// distinguished name, for the rules the kit uses: RULE:pattern/replacement/
// then DEFAULT (the name itself).
func principalOf(t *testing.T, rules, dn string) string {
	t.Helper()
	re := regexp.MustCompile(`^RULE:(.+?)/([^/]*)/([LU]?)(?:,(.*))?$`)
	for rules != "" && rules != "DEFAULT" {
		m := re.FindStringSubmatch(rules)
		if m == nil {
			t.Fatalf("principal mapping rules %q: not RULE:pattern/replacement/ followed by DEFAULT", rules)
		}
		pat := regexp.MustCompile(m[1])
		if sm := pat.FindStringSubmatchIndex(dn); sm != nil {
			name := string(pat.ExpandString(nil, m[2], dn, sm))
			switch m[3] {
			case "L":
				name = strings.ToLower(name)
			case "U":
				name = strings.ToUpper(name)
			}
			return name
		}
		rules = m[4]
	}
	return dn
}

func TestComposeVariablesHaveDefaults(t *testing.T) {
	_, vars, err := interpolate(readFile(t, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	guide := readFile(t, "README.md")
	for _, name := range sortedKeys(vars) {
		if vars[name] == "" {
			t.Errorf("compose.yaml: ${%s} has an empty default", name)
		}
		if !strings.Contains(guide, "`"+name+"`") {
			t.Errorf("compose.yaml reads %s, which README.md does not document", name)
		}
	}
}

func TestComposeServices(t *testing.T) {
	c, _ := loadCompose(t)
	var want []string
	want = append(append(append(want, brokerNames...), ordererNames...), oneShots...)
	slices.Sort(want)
	if got := sortedKeys(c.Services); !slices.Equal(got, want) {
		t.Errorf("services %v, want %v", got, want)
	}
	for _, name := range oneShots {
		if s := c.Services[name]; s.Restart != "no" {
			t.Errorf("%s: a one-shot step has restart %q, want \"no\"", name, s.Restart)
		}
	}
	for _, name := range append(slices.Clone(brokerNames), ordererNames...) {
		if s := c.Services[name]; s.Restart != "unless-stopped" && s.Restart != "always" {
			t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
		}
	}
	dependsOn := func(svc, on, cond string) {
		if got := c.Services[svc].DependsOn[on].Condition; got != cond {
			t.Errorf("%s: depends on %s with condition %q, want %q", svc, on, got, cond)
		}
	}
	for _, b := range brokerNames {
		dependsOn(b, "kafka-pki", "service_completed_successfully")
		dependsOn("kafka-acls", b, "service_started")
	}
	for _, o := range ordererNames {
		for _, step := range oneShots {
			dependsOn(o, step, "service_completed_successfully")
		}
	}
}

func TestComposeBrokers(t *testing.T) {
	c, _ := loadCompose(t)
	ts := consensus.DefaultTopicSettings()
	want := map[string]string{
		"process.roles":                  "broker,controller",
		"ssl.client.auth":                "required",
		"ssl.keystore.type":              "PEM",
		"ssl.truststore.type":            "PEM",
		"authorizer.class.name":          "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"allow.everyone.if.no.acl.found": "false",
		"default.replication.factor":     strconv.Itoa(int(ts.ReplicationFactor)),
		"min.insync.replicas":            strconv.Itoa(ts.MinInsyncReplicas),
		"unclean.leader.election.enable": "false",
		"log.retention.ms":               "-1",
		"log.retention.bytes":            "-1",
		"log.cleanup.policy":             "delete",
		"message.max.bytes":              strconv.Itoa(consensus.DefaultMaxMessageBytes),
		"auto.create.topics.enable":      "false",
		"delete.topic.enable":            "false",
	}
	ids := make(map[string]bool)
	var voters []string
	for i, name := range brokerNames {
		s := c.Services[name]
		if !regexp.MustCompile(`^apache/kafka:\d+\.\d+\.\d+$`).MatchString(s.Image) {
			t.Errorf("%s: image %q, want a pinned apache/kafka:X.Y.Z", name, s.Image)
		}
		props := kafkaProps(s.Environment)
		for _, k := range sortedKeys(want) {
			if props[k] != want[k] {
				t.Errorf("%s: %s=%q, want %q", name, k, props[k], want[k])
			}
		}
		for _, k := range []string{"ssl.keystore.password", "ssl.key.password", "ssl.truststore.password"} {
			if _, ok := props[k]; ok {
				t.Errorf("%s: %s set: PEM stores take no store password and the kit's keys are unencrypted", name, k)
			}
		}
		ids[props["node.id"]] = true
		if i == 0 {
			voters = strings.Split(props["controller.quorum.voters"], ",")
		} else if props["controller.quorum.voters"] != strings.Join(voters, ",") {
			t.Errorf("%s: controller.quorum.voters differ between brokers", name)
		}
		if s.Environment["CLUSTER_ID"] != c.Services[brokerNames[0]].Environment["CLUSTER_ID"] {
			t.Errorf("%s: CLUSTER_ID differs between brokers", name)
		}
		checkListeners(t, name, props)
	}
	checkClusterID(t, c.Services[brokerNames[0]].Environment["CLUSTER_ID"])
	if len(ids) != len(brokerNames) || len(voters) != len(brokerNames) {
		t.Errorf("node IDs %v and quorum voters %v: want %d of each", sortedKeys(ids), voters, len(brokerNames))
	}
	for _, v := range voters {
		id, hostPort, _ := strings.Cut(v, "@")
		if !ids[id] || !slices.Contains(brokerNames, strings.Split(hostPort, ":")[0]) {
			t.Errorf("quorum voter %q is not a broker of the file", v)
		}
	}
}

// checkListeners checks a broker's listeners: every one TLS, the
// controller and inter-broker ones among them, each advertised host the
// broker itself, and no listener named SSL (the image's start script then
// demands JKS password files).
func checkListeners(t *testing.T, name string, props map[string]string) {
	t.Helper()
	protocols := make(map[string]string)
	for _, kv := range strings.Split(props["listener.security.protocol.map"], ",") {
		l, p, _ := strings.Cut(kv, ":")
		protocols[l] = p
	}
	for l, p := range protocols {
		if p != "SSL" {
			t.Errorf("%s: listener %s uses %s, want SSL", name, l, p)
		}
	}
	for _, l := range []string{props["controller.listener.names"], props["inter.broker.listener.name"]} {
		if _, ok := protocols[l]; !ok {
			t.Errorf("%s: listener %q not in listener.security.protocol.map", name, l)
		}
	}
	adv := props["advertised.listeners"]
	if strings.Contains(adv, "SSL://") {
		t.Errorf("%s: advertised listener named SSL: the apache/kafka image then requires JKS password files", name)
	}
	for _, l := range strings.Split(adv, ",") {
		ln, addr, _ := strings.Cut(l, "://")
		if _, ok := protocols[ln]; !ok || !strings.HasPrefix(addr, name+":") {
			t.Errorf("%s: advertised listener %q: want a listener of the map on host %s", name, l, name)
		}
	}
}

// checkClusterID checks that id is what KRaft's storage format takes: a
// UUID in URL-safe base64 without padding.
func checkClusterID(t *testing.T, id string) {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		t.Errorf("CLUSTER_ID %q: want 16 bytes in URL-safe base64 without padding (kafka-storage.sh random-uuid)", id)
	}
}

func TestComposePrincipals(t *testing.T) {
	c, _ := loadCompose(t)
	props := kafkaProps(c.Services[brokerNames[0]].Environment)
	rules := props["ssl.principal.mapping.rules"]
	super := strings.Split(props["super.users"], ";")
	pki := c.Services["kafka-pki"].Environment
	if got := strings.Fields(pki["BROKERS"]); !slices.Equal(got, brokerNames) {
		t.Errorf("kafka-pki BROKERS %v, want the brokers %v", got, brokerNames)
	}
	for _, cn := range append(slices.Clone(brokerNames), "admin") {
		if p := "User:" + principalOf(t, rules, "CN="+cn); !slices.Contains(super, p) {
			t.Errorf("the certificate CN=%s is %s, not a super user (%v)", cn, p, super)
		}
	}
	acls := c.Services["kafka-acls"].Environment
	clients := strings.Fields(pki["CLIENTS"])
	for _, p := range strings.Fields(acls["PRINCIPALS"]) {
		if !slices.Contains(ordererNames, p) || !slices.Contains(clients, p) {
			t.Errorf("kafka-acls gives ACLs to User:%s, which is no orderer with a Kafka certificate (CLIENTS %v)", p, clients)
		}
	}
	for _, o := range ordererNames {
		if p := principalOf(t, rules, "CN="+o); !slices.Contains(strings.Fields(acls["PRINCIPALS"]), p) {
			t.Errorf("%s's Kafka principal User:%s has no ACLs", o, p)
		}
	}
	var channels []string
	for _, g := range flagValues(c.Services[ordererNames[0]].Command)["genesis"] {
		channels = append(channels, strings.TrimSuffix(g[strings.LastIndex(g, "/")+1:], ".block"))
	}
	if got := strings.Fields(acls["CHANNELS"]); !slices.Equal(got, channels) {
		t.Errorf("kafka-acls CHANNELS %v, the orderers serve %v", got, channels)
	}
	if got := strings.Fields(c.Services["orderer-crypto"].Environment["CHANNELS"]); !slices.Equal(got, channels) {
		t.Errorf("orderer-crypto CHANNELS %v, the orderers serve %v", got, channels)
	}
	if rules == "" || principalOf(t, rules, "CN=orderer0,O=OrdererMSP") != "orderer0" {
		t.Errorf("ssl.principal.mapping.rules %q does not map a certificate to its CN", rules)
	}
}

func TestComposeOrderers(t *testing.T) {
	c, _ := loadCompose(t)
	ts := consensus.DefaultTopicSettings()
	var brokers []string
	for _, b := range brokerNames {
		for _, l := range strings.Split(kafkaProps(c.Services[b].Environment)["advertised.listeners"], ",") {
			if name, addr, _ := strings.Cut(l, "://"); name == "CLIENT" {
				brokers = append(brokers, addr)
			}
		}
	}
	base := withoutFlag(c.Services[ordererNames[0]].Command, "peers")
	for _, name := range ordererNames {
		s := c.Services[name]
		inv := invocation{where: "compose.yaml " + name, sub: s.Command[0], args: s.Command[1:]}
		if inv.sub != "start" {
			t.Fatalf("%s: command %v, want start", name, s.Command)
		}
		checkFlags(t, inv)
		v := flagValues(inv.args)
		one := func(flag string) string {
			if len(v[flag]) != 1 {
				t.Errorf("%s: --%s given %d times, want once", name, flag, len(v[flag]))
				return ""
			}
			return v[flag][0]
		}
		if got := one("brokers"); got != strings.Join(brokers, ",") {
			t.Errorf("%s: --brokers %s, want the brokers' CLIENT listeners %s", name, got, strings.Join(brokers, ","))
		}
		if one("replication-factor") != strconv.Itoa(int(ts.ReplicationFactor)) || one("min-insync-replicas") != strconv.Itoa(ts.MinInsyncReplicas) {
			t.Errorf("%s: topic settings differ from consensus.DefaultTopicSettings", name)
		}
		var peers []string
		for _, o := range ordererNames {
			if o != name {
				peers = append(peers, c.Services[o].Hostname+":"+portOf(one("listen")))
			}
		}
		if got := one("peers"); got != strings.Join(peers, ",") {
			t.Errorf("%s: --peers %s, want the other nodes %s", name, got, strings.Join(peers, ","))
		}
		if one("peer-tls-ca") == "" || one("tls-cert") == "" || one("kafka-tls-cert") == "" || one("signer") == "" || one("metrics-listen") == "" {
			t.Errorf("%s: want TLS for gRPC, peers and Kafka, a signer and metrics", name)
		}
		if !slices.Equal(withoutFlag(s.Command, "peers"), base) {
			t.Errorf("%s: command differs from %s's in more than --peers", name, ordererNames[0])
		}
		if want := name + ".example.com"; s.Hostname != want || !slices.Contains(s.Networks["default"].Aliases, want) {
			t.Errorf("%s: hostname %q and aliases %v, want %s (the name in its TLS certificate)", name, s.Hostname, s.Networks["default"].Aliases, want)
		}
		checkHardened(t, name, s, portOf(one("metrics-listen")))
	}
}

// checkHardened checks an orderer container: read-only root, no
// privileges, the image's orderer target, metrics published on loopback
// only.
func checkHardened(t *testing.T, name string, s service, metricsPort string) {
	t.Helper()
	if !s.ReadOnly || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") || !slices.Contains(s.CapDrop, "ALL") {
		t.Errorf("%s: want read_only, no-new-privileges and cap_drop ALL", name)
	}
	if s.Build == nil || s.Build.Target != "orderer" || s.Build.Dockerfile != "deploy/Dockerfile" {
		t.Errorf("%s: want the orderer target of deploy/Dockerfile", name)
	}
	for _, p := range s.Ports {
		if strings.HasSuffix(p, ":"+metricsPort) && !strings.HasPrefix(p, "127.0.0.1:") {
			t.Errorf("%s: port %s publishes /metrics and /healthz, which have no authentication, beyond loopback", name, p)
		}
	}
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// withoutFlag returns args without the --name=value arguments of a flag.
func withoutFlag(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "--"+name+"=") {
			out = append(out, a)
		}
	}
	return out
}

// mount is one volume of a service: a named volume or a bind mount.
type mount struct{ source, target, mode string }

func mountsOf(s service) []mount {
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		m := mount{source: parts[0], target: parts[1]}
		if len(parts) > 2 {
			m.mode = parts[2]
		}
		out = append(out, m)
	}
	return out
}

func TestComposeVolumes(t *testing.T) {
	c, _ := loadCompose(t)
	used := make(map[string]string)
	dataTarget := func(svc, target string) {
		for _, m := range mountsOf(c.Services[svc]) {
			if m.target == target && !strings.HasPrefix(m.source, ".") {
				if _, ok := c.Volumes[m.source]; !ok {
					t.Errorf("%s: volume %s not declared", svc, m.source)
				}
				if other, ok := used[m.source]; ok {
					t.Errorf("volume %s used by %s and %s", m.source, other, svc)
				}
				used[m.source] = svc
				return
			}
		}
		t.Errorf("%s: no named volume at %s", svc, target)
	}
	for _, b := range brokerNames {
		dataTarget(b, kafkaProps(c.Services[b].Environment)["log.dirs"])
	}
	for _, o := range ordererNames {
		dataTarget(o, flagValues(c.Services[o].Command)["data"][0])
	}
	for _, v := range sortedKeys(c.Volumes) {
		if used[v] == "" {
			t.Errorf("volume %s declared but unused", v)
		}
	}
	for _, name := range append(slices.Clone(brokerNames), append(slices.Clone(ordererNames), "kafka-acls")...) {
		for _, m := range mountsOf(c.Services[name]) {
			if strings.HasPrefix(m.source, ".") && m.mode != "ro" {
				t.Errorf("%s: bind mount %s:%s is writable; a node's configuration is read-only", name, m.source, m.target)
			}
		}
	}
}

func TestComposeOneShots(t *testing.T) {
	c, _ := loadCompose(t)
	for _, name := range oneShots {
		s := c.Services[name]
		script := ""
		for _, w := range append(slices.Clone(s.Entrypoint), s.Command...) {
			if strings.HasSuffix(w, ".sh") {
				script = "scripts/" + w[strings.LastIndex(w, "/")+1:]
			}
		}
		if script == "" {
			t.Errorf("%s: runs no script of deploy/scripts", name)
			continue
		}
		settings := scriptSettings(readFile(t, script))
		for _, k := range sortedKeys(s.Environment) {
			if _, ok := settings[k]; !ok {
				t.Errorf("%s: sets %s, which %s does not read (it reads %v)", name, k, script, sortedKeys(settings))
			}
		}
	}
	if s := c.Services["orderer-crypto"]; strconv.Itoa(len(ordererNames)) != s.Environment["ORDERERS"] {
		t.Errorf("orderer-crypto: ORDERERS %s, the file runs %d orderers", s.Environment["ORDERERS"], len(ordererNames))
	}
}
