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
	read = &cb.ConfigGroup{
		Version:  o.GetVersion(),
		Groups:   make(map[string]*cb.ConfigGroup),
		Values:   make(map[string]*cb.ConfigValue),
		Policies: make(map[string]*cb.ConfigPolicy),
	}
	write = &cb.ConfigGroup{
		Version:  o.GetVersion(),
		Groups:   make(map[string]*cb.ConfigGroup),
		Values:   make(map[string]*cb.ConfigValue),
		Policies: make(map[string]*cb.ConfigPolicy),
	}
	// Unchanged members, by version only: written too if the group's
	// membership changes.
	sameGroups := make(map[string]*cb.ConfigGroup)
	sameValues := make(map[string]*cb.ConfigValue)
	samePolicies := make(map[string]*cb.ConfigPolicy)
	membership := o.GetModPolicy() != u.GetModPolicy()

	for k, ov := range o.GetValues() {
		uv, ok := u.GetValues()[k]
		switch {
		case !ok:
			membership = true
		case ov.GetModPolicy() == uv.GetModPolicy() && bytes.Equal(ov.GetValue(), uv.GetValue()):
			sameValues[k] = &cb.ConfigValue{Version: ov.GetVersion()}
		default:
			write.Values[k] = &cb.ConfigValue{Version: ov.GetVersion() + 1, ModPolicy: uv.GetModPolicy(), Value: uv.GetValue()}
		}
	}
	for k, uv := range u.GetValues() {
		if _, ok := o.GetValues()[k]; !ok {
			membership = true
			write.Values[k] = &cb.ConfigValue{ModPolicy: uv.GetModPolicy(), Value: uv.GetValue()}
		}
	}

	for k, op := range o.GetPolicies() {
		up, ok := u.GetPolicies()[k]
		switch {
		case !ok:
			membership = true
		case op.GetModPolicy() == up.GetModPolicy() && proto.Equal(op.GetPolicy(), up.GetPolicy()):
			samePolicies[k] = &cb.ConfigPolicy{Version: op.GetVersion()}
		default:
			write.Policies[k] = &cb.ConfigPolicy{Version: op.GetVersion() + 1, ModPolicy: up.GetModPolicy(), Policy: up.GetPolicy()}
		}
	}
	for k, up := range u.GetPolicies() {
		if _, ok := o.GetPolicies()[k]; !ok {
			membership = true
			write.Policies[k] = &cb.ConfigPolicy{ModPolicy: up.GetModPolicy(), Policy: up.GetPolicy()}
		}
	}

	for k, og := range o.GetGroups() {
		ug, ok := u.GetGroups()[k]
		if !ok {
			membership = true
			continue
		}
		r, w, ch := groupUpdate(og, ug)
		if !ch {
			sameGroups[k] = r
			continue
		}
		read.Groups[k] = r
		write.Groups[k] = w
	}
	for k, ug := range u.GetGroups() {
		if _, ok := o.GetGroups()[k]; !ok {
			membership = true
			_, w, _ := groupUpdate(&cb.ConfigGroup{}, ug)
			w.Version = 0
			w.ModPolicy = ug.GetModPolicy()
			write.Groups[k] = w
		}
	}

	if !membership {
		if len(read.Groups) == 0 && len(write.Groups) == 0 && len(write.Values) == 0 && len(write.Policies) == 0 {
			return &cb.ConfigGroup{Version: o.GetVersion()}, &cb.ConfigGroup{Version: o.GetVersion()}, false
		}
		return read, write, true
	}
	for k, v := range sameValues {
		read.Values[k], write.Values[k] = v, v
	}
	for k, p := range samePolicies {
		read.Policies[k], write.Policies[k] = p, p
	}
	for k, g := range sameGroups {
		read.Groups[k], write.Groups[k] = g, g
	}
	write.Version = o.GetVersion() + 1
	write.ModPolicy = u.GetModPolicy()
	return read, write, true
}
