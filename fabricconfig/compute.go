package fabricconfig

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ComputeUpdate returns the ConfigUpdate of channel channelID that turns
// original into updated, as Fabric's configtxlator compute_update does: an
// element whose content or mod_policy changed is written at its version
// plus one, a new element at version 0; a group whose membership or
// mod_policy changed is written at its version plus one with all its
// elements, the unchanged ones at their current versions (so that removed
// elements are deleted); the read set holds, at their current versions,
// the groups on the way to a change and the unchanged members of a
// rewritten group. Versions in updated are ignored. An update without any
// difference is an error wrapping channelconfig.ErrMalformed.
//
// Sign the result with NewConfigUpdateEnvelope.
func ComputeUpdate(channelID string, original, updated *cb.Config) (*cb.ConfigUpdate, error) {
	if original.GetChannelGroup() == nil || updated.GetChannelGroup() == nil {
		return nil, fmt.Errorf("%w: config without a channel group", channelconfig.ErrMalformed)
	}
	read, write, changed := groupUpdate(original.GetChannelGroup(), updated.GetChannelGroup())
	if !changed {
		return nil, fmt.Errorf("%w: no differences detected between original and updated config", channelconfig.ErrMalformed)
	}
	return &cb.ConfigUpdate{ChannelId: channelID, ReadSet: read, WriteSet: write}, nil
}

// groupUpdate returns the read and write sets of the change from o to u,
// and whether there is one.
func groupUpdate(o, u *cb.ConfigGroup) (read, write *cb.ConfigGroup, changed bool) {
	d := newGroupDiff(o, u)
	d.diffValues(o.GetValues(), u.GetValues())
	d.diffPolicies(o.GetPolicies(), u.GetPolicies())
	d.diffGroups(o.GetGroups(), u.GetGroups())
	return d.result(o, u)
}

// groupDiff is the update of one group while groupUpdate computes it.
type groupDiff struct {
	read, write *cb.ConfigGroup
	// Unchanged members, by version only: written too if the group's
	// membership changes.
	sameGroups   map[string]*cb.ConfigGroup
	sameValues   map[string]*cb.ConfigValue
	samePolicies map[string]*cb.ConfigPolicy
	// membership is whether a member was added or removed, or the
	// group's mod_policy changed.
	membership bool
}

// newGroupDiff returns the empty update of o to u, read and write sets at
// o's version.
func newGroupDiff(o, u *cb.ConfigGroup) *groupDiff {
	return &groupDiff{
		read:         emptyGroup(o.GetVersion()),
		write:        emptyGroup(o.GetVersion()),
		sameGroups:   make(map[string]*cb.ConfigGroup),
		sameValues:   make(map[string]*cb.ConfigValue),
		samePolicies: make(map[string]*cb.ConfigPolicy),
		membership:   o.GetModPolicy() != u.GetModPolicy(),
	}
}

// emptyGroup returns a group at version with empty, non-nil maps.
func emptyGroup(version uint64) *cb.ConfigGroup {
	return &cb.ConfigGroup{
		Version:  version,
		Groups:   make(map[string]*cb.ConfigGroup),
		Values:   make(map[string]*cb.ConfigValue),
		Policies: make(map[string]*cb.ConfigPolicy),
	}
}

// diffValues writes the values of u that are new (at version 0) or differ
// from o's in content or mod_policy (at o's version plus one), and records
// the unchanged ones.
func (d *groupDiff) diffValues(o, u map[string]*cb.ConfigValue) {
	for k, ov := range o {
		uv, ok := u[k]
		switch {
		case !ok:
			d.membership = true
		case ov.GetModPolicy() == uv.GetModPolicy() && bytes.Equal(ov.GetValue(), uv.GetValue()):
			d.sameValues[k] = &cb.ConfigValue{Version: ov.GetVersion()}
		default:
			d.write.Values[k] = &cb.ConfigValue{Version: ov.GetVersion() + 1, ModPolicy: uv.GetModPolicy(), Value: uv.GetValue()}
		}
	}
	for k, uv := range u {
		if _, ok := o[k]; !ok {
			d.membership = true
			d.write.Values[k] = &cb.ConfigValue{ModPolicy: uv.GetModPolicy(), Value: uv.GetValue()}
		}
	}
}

// diffPolicies does for policies what diffValues does for values.
func (d *groupDiff) diffPolicies(o, u map[string]*cb.ConfigPolicy) {
	for k, op := range o {
		up, ok := u[k]
		switch {
		case !ok:
			d.membership = true
		case op.GetModPolicy() == up.GetModPolicy() && proto.Equal(op.GetPolicy(), up.GetPolicy()):
			d.samePolicies[k] = &cb.ConfigPolicy{Version: op.GetVersion()}
		default:
			d.write.Policies[k] = &cb.ConfigPolicy{Version: op.GetVersion() + 1, ModPolicy: up.GetModPolicy(), Policy: up.GetPolicy()}
		}
	}
	for k, up := range u {
		if _, ok := o[k]; !ok {
			d.membership = true
			d.write.Policies[k] = &cb.ConfigPolicy{ModPolicy: up.GetModPolicy(), Policy: up.GetPolicy()}
		}
	}
}

// diffGroups computes the update of every subgroup present in both o and
// u, reading and writing the changed ones and recording the unchanged
// ones, and writes the new subgroups whole at version 0.
func (d *groupDiff) diffGroups(o, u map[string]*cb.ConfigGroup) {
	for k, og := range o {
		ug, ok := u[k]
		if !ok {
			d.membership = true
			continue
		}
		r, w, ch := groupUpdate(og, ug)
		if !ch {
			d.sameGroups[k] = r
			continue
		}
		d.read.Groups[k] = r
		d.write.Groups[k] = w
	}
	for k, ug := range u {
		if _, ok := o[k]; !ok {
			d.membership = true
			_, w, _ := groupUpdate(&cb.ConfigGroup{}, ug)
			w.Version = 0
			w.ModPolicy = ug.GetModPolicy()
			d.write.Groups[k] = w
		}
	}
}

// result returns the read and write sets of the update of o to u, and
// whether there is one. When the membership changed, the unchanged
// members are read and written at their versions, so that the write set
// lists every member, and the group is written at o's version plus one
// with u's mod_policy.
func (d *groupDiff) result(o, u *cb.ConfigGroup) (read, write *cb.ConfigGroup, changed bool) {
	read, write = d.read, d.write
	if !d.membership {
		if len(read.Groups) == 0 && len(write.Groups) == 0 && len(write.Values) == 0 && len(write.Policies) == 0 {
			return &cb.ConfigGroup{Version: o.GetVersion()}, &cb.ConfigGroup{Version: o.GetVersion()}, false
		}
		return read, write, true
	}
	for k, v := range d.sameValues {
		read.Values[k], write.Values[k] = v, v
	}
	for k, p := range d.samePolicies {
		read.Policies[k], write.Policies[k] = p, p
	}
	for k, g := range d.sameGroups {
		read.Groups[k], write.Groups[k] = g, g
	}
	write.Version = o.GetVersion() + 1
	write.ModPolicy = u.GetModPolicy()
	return read, write, true
}
