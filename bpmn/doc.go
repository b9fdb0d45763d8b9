// Package bpmn embeds the process models nfslab deploys to Zeebe, authored
// in this repository.
package bpmn
