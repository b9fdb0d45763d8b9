package bpmn

import _ "embed"

// OneTask is a process with one service task, as used for the workshop's
// load: process ID ProcessID, job type JobType.
//
//go:embed one_task.bpmn
var OneTask []byte

const (
	// OneTaskName is the resource name OneTask is deployed under.
	OneTaskName = "one_task.bpmn"
	// ProcessID is OneTask's BPMN process ID.
	ProcessID = "benchmark"
	// JobType is the type of OneTask's service task.
	JobType = "benchmark-task"
)
