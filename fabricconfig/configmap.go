package fabricconfig

import (
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Prefixes of the keys of a configMap, as Fabric writes them in its
// messages (note the two spaces after Group and Value).
const (
	groupPrefix  = "[Group]  "
	valuePrefix  = "[Value]  "
	policyPrefix = "[Policy] "
)

// element is one group, value or policy of a configuration tree, at a path.
// Exactly one of group, value and policy is set.
type element struct {
	key    string
	path   []string // the enclosing groups from the root ("Channel"); empty for the root
	group  *cb.ConfigGroup
	value  *cb.ConfigValue
	policy *cb.ConfigPolicy
}

func (e element) version() uint64 {
	switch {
	case e.group != nil:
		return e.group.GetVersion()
	case e.value != nil:
		return e.value.GetVersion()
	default:
		return e.policy.GetVersion()
	}
}

func (e element) modPolicy() string {
	switch {
	case e.group != nil:
		return e.group.GetModPolicy()
	case e.value != nil:
		return e.value.GetModPolicy()
	default:
		return e.policy.GetModPolicy()
	}
}

// configMap is a configuration tree flattened by fully qualified key:
// "[Group]  /Channel/Orderer", "[Value]  /Channel/Orderer/BatchSize",
// "[Policy] /Channel/Admins".
type configMap map[string]element

// configIDRE is Fabric's rule for configuration keys: ASCII letters,
// digits, '.' and '-'.
var configIDRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// validateConfigID checks a configuration key as Fabric does.
func validateConfigID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("config ID illegal, cannot be empty")
	case len(id) > maxIDLength:
		return fmt.Errorf("config ID illegal, cannot be longer than %d", maxIDLength)
	case id == "." || id == "..":
		return fmt.Errorf("name '%s' for config ID is not allowed", id)
	case !configIDRE.MatchString(id):
		return fmt.Errorf("config ID '%s' contains illegal characters", id)
	}
	return nil
}

// mapConfig flattens the tree rooted at root, the channel group (or a read
// or write set of it), into a configMap. A nil root maps to an empty map.
func mapConfig(root *cb.ConfigGroup) (configMap, error) {
	m := make(configMap)
	if root == nil {
		return m, nil
	}
	if err := m.add(element{key: ChannelGroupKey, group: root}); err != nil {
		return nil, err
	}
	return m, nil
}

// add adds e and, for a group, its elements.
func (m configMap) add(e element) error {
	if err := validateConfigID(e.key); err != nil {
		return fmt.Errorf("illegal characters in key %s: %w", fqKey(e), err)
	}
	m[fqKey(e)] = e
	if e.group == nil {
		return nil
	}
	path := append(append([]string(nil), e.path...), e.key)
	for _, k := range sortedKeys(e.group.GetGroups()) {
		if err := m.add(element{key: k, path: path, group: e.group.GetGroups()[k]}); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(e.group.GetValues()) {
		if err := m.add(element{key: k, path: path, value: e.group.GetValues()[k]}); err != nil {
			return err
		}
	}
	for _, k := range sortedKeys(e.group.GetPolicies()) {
		if err := m.add(element{key: k, path: path, policy: e.group.GetPolicies()[k]}); err != nil {
			return err
		}
	}
	return nil
}

// fqKey is the fully qualified key of e.
func fqKey(e element) string {
	prefix := policyPrefix
	switch {
	case e.group != nil:
		prefix = groupPrefix
	case e.value != nil:
		prefix = valuePrefix
	}
	return prefix + joinPath(e.path, e.key)
}

// joinPath returns "/a/b/key" for path [a b] and key.
func joinPath(path []string, key string) string {
	if len(path) == 0 {
		return "/" + key
	}
	return "/" + strings.Join(path, "/") + "/" + key
}

// toGroup rebuilds the channel group from m, as Fabric's configtx does: a
// group takes its version, mod_policy and the names of its elements from
// its entry in m, and each element from the entry of its own key. When the
// orderer capabilities value exists, empty mod_policies (left by Fabric
// 1.0's channel creation) become "Admins", as in Fabric.
func (m configMap) toGroup() (*cb.ConfigGroup, error) {
	_, fixModPolicies := m[valuePrefix+joinPath([]string{ChannelGroupKey, OrdererGroupKey}, CapabilitiesKey)]
	return m.rebuild([]string{ChannelGroupKey}, fixModPolicies)
}

func (m configMap) rebuild(path []string, fix bool) (*cb.ConfigGroup, error) {
	gk := groupPrefix + joinPath(path[:len(path)-1], path[len(path)-1])
	e, ok := m[gk]
	if !ok || e.group == nil {
		return nil, fmt.Errorf("missing group at path: %s", gk)
	}
	g := &cb.ConfigGroup{
		Version:   e.group.GetVersion(),
		ModPolicy: e.group.GetModPolicy(),
		Groups:    make(map[string]*cb.ConfigGroup, len(e.group.GetGroups())),
		Values:    make(map[string]*cb.ConfigValue, len(e.group.GetValues())),
		Policies:  make(map[string]*cb.ConfigPolicy, len(e.group.GetPolicies())),
	}
	for k := range e.group.GetGroups() {
		sub, err := m.rebuild(append(append([]string(nil), path...), k), fix)
		if err != nil {
			return nil, err
		}
		g.Groups[k] = sub
	}
	for k := range e.group.GetValues() {
		vk := valuePrefix + joinPath(path, k)
		v, ok := m[vk]
		if !ok || v.value == nil {
			return nil, fmt.Errorf("missing value at path: %s", vk)
		}
		g.Values[k] = proto.Clone(v.value).(*cb.ConfigValue)
	}
	for k := range e.group.GetPolicies() {
		pk := policyPrefix + joinPath(path, k)
		p, ok := m[pk]
		if !ok || p.policy == nil {
			return nil, fmt.Errorf("missing policy at path: %s", pk)
		}
		g.Policies[k] = proto.Clone(p.policy).(*cb.ConfigPolicy)
	}
	if fix {
		if g.ModPolicy == "" {
			g.ModPolicy = AdminsPolicy
		}
		for _, v := range g.Values {
			if v.ModPolicy == "" {
				v.ModPolicy = AdminsPolicy
			}
		}
		for _, p := range g.Policies {
			if p.ModPolicy == "" {
				p.ModPolicy = AdminsPolicy
			}
		}
	}
	return g, nil
}
