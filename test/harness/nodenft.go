package harness

import (
	"encoding/json"
	"errors"
	"os/exec"
	"sort"
	"strings"
)

// kubelet creates iptables(-nft) chains of its own (KUBE-IPTABLES-HINT,
// KUBE-KUBELET-CANARY, KUBE-FIREWALL) and leaves them when it stops. The
// tables it creates that way (ip/ip6 filter, nat, mangle) are removed with
// the node when they did not exist before it started, or, after a run that
// died, when they hold nothing but kubelet's chains.

// nftTable is one table of the ruleset and what it holds.
type nftTable struct {
	family, name string
	chains       []string
	// foreign counts rules outside KUBE- chains that do not jump to one.
	foreign int
}

func (t nftTable) key() string { return t.family + " " + t.name }

// kubeletOnly tells whether t holds only kubelet's chains and jumps to them.
func (t nftTable) kubeletOnly() bool {
	if t.foreign > 0 {
		return false
	}
	kube := false
	for _, c := range t.chains {
		switch {
		case strings.HasPrefix(c, "KUBE-"):
			kube = true
		case c == "INPUT" || c == "OUTPUT" || c == "FORWARD" || c == "PREROUTING" || c == "POSTROUTING":
		default:
			return false
		}
	}
	return kube
}

// nftRuleset reads the tables of the machine's ruleset.
func nftRuleset() (map[string]nftTable, error) {
	out, err := exec.Command("nft", "-j", "list", "ruleset").Output()
	if err != nil {
		return nil, errors.New("nft -j list ruleset: " + err.Error())
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, errors.New("parse nft ruleset: " + err.Error())
	}
	tables := map[string]nftTable{}
	type ref struct {
		Family string `json:"family"`
		Table  string `json:"table"`
		Name   string `json:"name"`
	}
	for _, item := range doc.Nftables {
		if raw, ok := item["table"]; ok {
			var r ref
			if json.Unmarshal(raw, &r) == nil {
				t := nftTable{family: r.Family, name: r.Name}
				tables[t.key()] = t
			}
		}
		if raw, ok := item["chain"]; ok {
			var r ref
			if json.Unmarshal(raw, &r) == nil {
				k := r.Family + " " + r.Table
				t := tables[k]
				t.chains = append(t.chains, r.Name)
				tables[k] = t
			}
		}
		if raw, ok := item["rule"]; ok {
			var r struct {
				ref
				Chain string `json:"chain"`
			}
			if json.Unmarshal(raw, &r) == nil {
				k := r.Family + " " + r.Table
				t := tables[k]
				if !strings.HasPrefix(r.Chain, "KUBE-") && !strings.Contains(string(raw), `"target":"KUBE-`) && !strings.Contains(string(raw), `"target": "KUBE-`) {
					t.foreign++
				}
				tables[k] = t
			}
		}
	}
	return tables, nil
}

// nftTableKeys lists the tables ("family name") of the ruleset.
func nftTableKeys() map[string]bool {
	tables, err := nftRuleset()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for k := range tables {
		out[k] = true
	}
	return out
}

// removeKubeletTables deletes the tables that did not exist before (when
// before is not nil) or, without a record, the ones holding only kubelet's
// chains.
func removeKubeletTables(before map[string]bool) error {
	tables, err := nftRuleset()
	if err != nil {
		return err
	}
	var errs []error
	for k, t := range tables {
		if before != nil && before[k] {
			continue
		}
		if before == nil && !t.kubeletOnly() {
			continue
		}
		if !t.kubeletOnly() && !strings.HasPrefix(t.name, "kube-proxy") && t.name != guardTable {
			// Created meanwhile by something else than the node: leave it.
			continue
		}
		if err := runCmd("nft", "delete", "table", t.family, t.name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kubeletTableLeftovers lists tables that hold only kubelet's chains.
func kubeletTableLeftovers() []string {
	tables, err := nftRuleset()
	if err != nil {
		return nil
	}
	var out []string
	for k, t := range tables {
		if t.kubeletOnly() {
			out = append(out, "nft table "+k+" (kubelet's chains)")
		}
	}
	sort.Strings(out)
	return out
}
