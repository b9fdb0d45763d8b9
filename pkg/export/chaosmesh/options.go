package chaosmesh

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ErrInvalid marks bad options; the command maps it to exit status 2.
var ErrInvalid = errors.New("invalid chaos-mesh export option")

// DefaultVolumePath is where Zeebe keeps its data in the official image:
// the NFS volume's mount point in the broker container.
const DefaultVolumePath = "/usr/local/zeebe/data"

// Options say which pods the exported objects act on. The command's flags
// and its --set KEY=VALUE both go through Set, so the two cannot disagree.
type Options struct {
	// Name is the Workflow's name; empty: the scenario's name.
	Name string
	// Namespace holds the pods under test and the Workflow; default "default".
	Namespace string
	// Selector are the labels of the pods under test: the NFS clients
	// (Zeebe brokers). Required: an empty selector would select every pod
	// of the namespace.
	Selector map[string]string
	// Mode and Value are Chaos Mesh's selector mode (one, all, fixed,
	// fixed-percent, random-max-percent) and its value; default all.
	Mode  SelectorMode
	Value string
	// Containers are the container names IOChaos and container-kill act on;
	// empty: IOChaos picks the pod's first container.
	Containers []string
	// VolumePath is the mount point of the NFS volume in the container,
	// IOChaos's volumePath; default DefaultVolumePath.
	VolumePath string
	// ServerAddress is the NFS server's address (IP, CIDR or host name) as
	// the pods reach it: the NetworkChaos externalTargets for $nfs-server.
	// Default: the scenario's storage.server.address for kind external.
	ServerAddress string
	// ServerSelector selects the NFS server's pods instead, when the server
	// runs in the cluster; ServerNamespace defaults to Namespace.
	ServerSelector  map[string]string
	ServerNamespace string
	// At pins a step that starts on an event Chaos Mesh cannot observe
	// (replay-start, target-exited, a detector) to an offset.
	At map[string]time.Duration
}

// Keys are the option names Set accepts; they are also the command's flags.
var Keys = []string{"name", "namespace", "selector", "mode", "value", "container", "volume-path",
	"server-address", "server-selector", "server-namespace", "at"}

var modes = []SelectorMode{OneMode, AllMode, FixedMode,
	FixedPercentMode, RandomMaxPercentMode}

// Set sets one option from its text form. selector and server-selector take
// labels (app=zeebe,tier=broker) and add to what was set before; container
// adds a name; at takes STEP=OFFSET (slow-reads=35s).
func (o *Options) Set(key, value string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s %q: %s", ErrInvalid, key, value, fmt.Sprintf(format, a...))
	}
	switch key {
	case "name":
		if errs := validation.IsDNS1123Subdomain(value); len(errs) > 0 {
			return bad("%s", strings.Join(errs, "; "))
		}
		o.Name = value
	case "namespace", "server-namespace":
		if errs := validation.IsDNS1123Label(value); len(errs) > 0 {
			return bad("%s", strings.Join(errs, "; "))
		}
		if key == "namespace" {
			o.Namespace = value
		} else {
			o.ServerNamespace = value
		}
	case "selector", "server-selector":
		labels, err := parseLabels(value)
		if err != nil {
			return bad("%v", err)
		}
		dst := &o.Selector
		if key == "server-selector" {
			dst = &o.ServerSelector
		}
		if *dst == nil {
			*dst = map[string]string{}
		}
		maps.Copy(*dst, labels)
	case "mode":
		m := SelectorMode(value)
		if !slices.Contains(modes, m) {
			return bad("not one of one, all, fixed, fixed-percent, random-max-percent")
		}
		o.Mode = m
	case "value":
		o.Value = value
	case "container":
		if errs := validation.IsDNS1123Label(value); len(errs) > 0 {
			return bad("%s", strings.Join(errs, "; "))
		}
		o.Containers = append(o.Containers, value)
	case "volume-path":
		if !strings.HasPrefix(value, "/") || strings.ContainsAny(value, "*?[") {
			return bad("want an absolute path without wildcards (the volume's mount point in the container)")
		}
		o.VolumePath = strings.TrimSuffix(value, "/")
		if o.VolumePath == "" {
			return bad("the root directory is not a volume mount point")
		}
	case "server-address":
		if !validAddress(value) {
			return bad("want an IP address, CIDR prefix or host name")
		}
		o.ServerAddress = value
	case "at":
		id, off, ok := strings.Cut(value, "=")
		if !ok || id == "" {
			return bad("want STEP=OFFSET, e.g. slow-reads=35s")
		}
		d, err := time.ParseDuration(off)
		if err != nil || d < 0 {
			return bad("offset %q is not a duration of zero or more", off)
		}
		if o.At == nil {
			o.At = map[string]time.Duration{}
		}
		o.At[id] = d
	default:
		return fmt.Errorf("%w: unknown option %q (want one of %s)", ErrInvalid, key, strings.Join(Keys, ", "))
	}
	return nil
}

// IsKey reports whether key names an option (rather than a scenario field
// for --set).
func IsKey(key string) bool { return slices.Contains(Keys, key) }

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("label value %q: %s", v, strings.Join(errs, "; "))
		}
		out[k] = v
	}
	return out, nil
}

func validAddress(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return true
	}
	return len(validation.IsDNS1123Subdomain(strings.ToLower(s))) == 0
}

// withDefaults fills the defaults and checks what Set cannot check alone.
func (o Options) withDefaults(scenarioName string) (Options, error) {
	if o.Name == "" {
		o.Name = scenarioName
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.ServerNamespace == "" {
		o.ServerNamespace = o.Namespace
	}
	if o.Mode == "" {
		o.Mode = AllMode
	}
	if o.VolumePath == "" {
		o.VolumePath = DefaultVolumePath
	}
	switch {
	case o.Mode == OneMode || o.Mode == AllMode:
		if o.Value != "" {
			return o, fmt.Errorf("%w: value %q applies only to modes fixed, fixed-percent and random-max-percent, not %s", ErrInvalid, o.Value, o.Mode)
		}
	case o.Value == "":
		return o, fmt.Errorf("%w: mode %s needs a value (a count for fixed, a percentage otherwise)", ErrInvalid, o.Mode)
	}
	if o.ServerAddress != "" && len(o.ServerSelector) > 0 {
		return o, fmt.Errorf("%w: give server-address (a server outside the cluster) or server-selector (its pods), not both", ErrInvalid)
	}
	return o, nil
}

func (o Options) podSelector() PodSelector {
	return PodSelector{
		Selector: PodSelectorSpec{Namespaces: []string{o.Namespace}, LabelSelectors: maps.Clone(o.Selector)},
		Mode:     o.Mode,
		Value:    o.Value,
	}
}

func (o Options) serverSelector() *PodSelector {
	return &PodSelector{
		Selector: PodSelectorSpec{Namespaces: []string{o.ServerNamespace}, LabelSelectors: maps.Clone(o.ServerSelector)},
		Mode:     AllMode,
	}
}
