package chaosmesh

// The subset of Chaos Mesh's API (chaos-mesh.org/v1alpha1) that the
// exporter writes, with the same field names and JSON tags. Chaos Mesh's
// own Go types (module github.com/chaos-mesh/chaos-mesh/api) pull in
// client-go and controller-runtime, about 34 MB of the nfslab binary, so
// they are used only by the tests: every golden file is decoded strictly
// into them (an unknown or misspelt field fails) and passes their webhook
// validation.

// APIVersion and KindWorkflow name the object.
const (
	APIVersion   = "chaos-mesh.org/v1alpha1"
	KindWorkflow = "Workflow"
)

// Workflow is v1alpha1.Workflow without status.
type Workflow struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   ObjectMeta   `json:"metadata"`
	Spec       WorkflowSpec `json:"spec"`
}

// ObjectMeta is the part of metav1.ObjectMeta a user writes.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// WorkflowSpec is v1alpha1.WorkflowSpec.
type WorkflowSpec struct {
	Entry     string     `json:"entry"`
	Templates []Template `json:"templates"`
}

// TemplateType is v1alpha1.TemplateType.
type TemplateType string

// Template types the exporter writes.
const (
	TypeSerial       TemplateType = "Serial"
	TypeParallel     TemplateType = "Parallel"
	TypeSuspend      TemplateType = "Suspend"
	TypeNetworkChaos TemplateType = "NetworkChaos"
	TypeIOChaos      TemplateType = "IOChaos"
	TypePodChaos     TemplateType = "PodChaos"
)

// Template is v1alpha1.Template (no tasks, branches, schedules or status
// checks).
type Template struct {
	Name        string       `json:"name"`
	Type        TemplateType `json:"templateType"`
	Deadline    *string      `json:"deadline,omitempty"`
	Children    []string     `json:"children,omitempty"`
	*EmbedChaos `json:",inline"`
}

// EmbedChaos is v1alpha1.EmbedChaos for the three kinds exported.
type EmbedChaos struct {
	IOChaos      *IOChaosSpec      `json:"ioChaos,omitempty"`
	NetworkChaos *NetworkChaosSpec `json:"networkChaos,omitempty"`
	PodChaos     *PodChaosSpec     `json:"podChaos,omitempty"`
}

// SelectorMode is v1alpha1.SelectorMode.
type SelectorMode string

// Selector modes.
const (
	OneMode              SelectorMode = "one"
	AllMode              SelectorMode = "all"
	FixedMode            SelectorMode = "fixed"
	FixedPercentMode     SelectorMode = "fixed-percent"
	RandomMaxPercentMode SelectorMode = "random-max-percent"
)

// PodSelector is v1alpha1.PodSelector.
type PodSelector struct {
	Selector PodSelectorSpec `json:"selector"`
	Mode     SelectorMode    `json:"mode"`
	Value    string          `json:"value,omitempty"`
}

// PodSelectorSpec is the part of v1alpha1.PodSelectorSpec the exporter
// fills: namespaces and labels.
type PodSelectorSpec struct {
	Namespaces     []string          `json:"namespaces,omitempty"`
	LabelSelectors map[string]string `json:"labelSelectors,omitempty"`
}

// ContainerSelector is v1alpha1.ContainerSelector.
type ContainerSelector struct {
	PodSelector    `json:",inline"`
	ContainerNames []string `json:"containerNames,omitempty"`
}

// NetworkChaosAction, PartitionBehavior and Direction are their
// v1alpha1 namesakes.
type (
	NetworkChaosAction string
	PartitionBehavior  string
	Direction          string
)

// Network chaos actions, partition behaviours and directions.
const (
	LossAction      NetworkChaosAction = "loss"
	PartitionAction NetworkChaosAction = "partition"
	DelayAction     NetworkChaosAction = "delay"
	NetemAction     NetworkChaosAction = "netem"
	BandwidthAction NetworkChaosAction = "bandwidth"

	// RejectPartitionBehavior; drop is the default, written as no field.
	RejectPartitionBehavior PartitionBehavior = "reject"

	DirectionTo   Direction = "to"
	DirectionFrom Direction = "from"
	DirectionBoth Direction = "both"
)

// NetworkChaosSpec is the part of v1alpha1.NetworkChaosSpec the exporter
// fills, in its field order.
type NetworkChaosSpec struct {
	PodSelector       `json:",inline"`
	Action            NetworkChaosAction `json:"action"`
	PartitionBehavior PartitionBehavior  `json:"partitionBehavior,omitempty"`
	Delay             *DelaySpec         `json:"delay,omitempty"`
	Loss              *LossSpec          `json:"loss,omitempty"`
	Duplicate         *DuplicateSpec     `json:"duplicate,omitempty"`
	Corrupt           *CorruptSpec       `json:"corrupt,omitempty"`
	Bandwidth         *BandwidthSpec     `json:"bandwidth,omitempty"`
	Direction         Direction          `json:"direction,omitempty"`
	Target            *PodSelector       `json:"target,omitempty"`
	ExternalTargets   []string           `json:"externalTargets,omitempty"`
}

// LossSpec is v1alpha1.LossSpec; Loss is a percentage ("80").
type LossSpec struct {
	Loss string `json:"loss"`
}

// DelaySpec is v1alpha1.DelaySpec: Latency and Jitter are Go durations,
// Correlation a percentage.
type DelaySpec struct {
	Latency     string       `json:"latency"`
	Correlation string       `json:"correlation,omitempty"`
	Jitter      string       `json:"jitter,omitempty"`
	Reorder     *ReorderSpec `json:"reorder,omitempty"`
}

// ReorderSpec is v1alpha1.ReorderSpec.
type ReorderSpec struct {
	Reorder string `json:"reorder"`
	Gap     int    `json:"gap"`
}

// DuplicateSpec and CorruptSpec are their v1alpha1 namesakes
// (percentages).
type (
	DuplicateSpec struct {
		Duplicate string `json:"duplicate"`
	}
	CorruptSpec struct {
		Corrupt string `json:"corrupt"`
	}
)

// BandwidthSpec is v1alpha1.BandwidthSpec: Rate in tc's units ("1mbit"),
// Limit the queue and Buffer the burst, in bytes.
type BandwidthSpec struct {
	Rate   string `json:"rate"`
	Limit  uint32 `json:"limit"`
	Buffer uint32 `json:"buffer"`
}

// IOChaosType and IoMethod are their v1alpha1 namesakes.
type (
	IOChaosType string
	IoMethod    string
)

// IO chaos actions.
const (
	IoLatency IOChaosType = "latency"
	IoFaults  IOChaosType = "fault"
)

// IOChaosSpec is the part of v1alpha1.IOChaosSpec the exporter fills.
type IOChaosSpec struct {
	ContainerSelector `json:",inline"`
	Action            IOChaosType `json:"action"`
	Delay             string      `json:"delay,omitempty"`
	Errno             uint32      `json:"errno,omitempty"`
	Path              string      `json:"path,omitempty"`
	Methods           []IoMethod  `json:"methods,omitempty"`
	Percent           int         `json:"percent,omitempty"`
	VolumePath        string      `json:"volumePath"`
}

// PodChaosAction is v1alpha1.PodChaosAction.
type PodChaosAction string

// Pod chaos actions.
const (
	PodKillAction       PodChaosAction = "pod-kill"
	PodFailureAction    PodChaosAction = "pod-failure"
	ContainerKillAction PodChaosAction = "container-kill"
)

// PodChaosSpec is the part of v1alpha1.PodChaosSpec the exporter fills.
type PodChaosSpec struct {
	ContainerSelector `json:",inline"`
	Action            PodChaosAction `json:"action"`
}
