"""The TrainerService implementation (trainer.proto): jobs over gRPC, and the rollout workers' stream.
Each method checks its request and answers the status codes the .proto names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from agentgym.trainer.jobs import JobEnded, JobRunner, UnknownJob
from agentgym.trainer.specs import SpecError, spec_from_request
from agentgym.trainer.work import WorkQueue
from agentgym.v1 import trainer_pb2 as rpb

DESCRIPTOR = rpb.DESCRIPTOR.services_by_name["TrainerService"]
Code = grpc.StatusCode


class TrainerService:
    def __init__(self, jobs: JobRunner, work: WorkQueue) -> None:
        self.jobs = jobs
        self.work = work

    def methods(self) -> dict[str, Any]:
        return {"Submit": self.submit, "ListJobs": self.list_jobs, "GetJob": self.get_job, "Watch": self.watch,
                "Cancel": self.cancel, "Work": self.work.work}  # fmt: skip

    async def _draining(self, context: grpc.aio.ServicerContext) -> None:
        if self.work.draining:
            await context.abort(Code.UNAVAILABLE, "the trainer is shutting down; try again once it is back")

    async def submit(self, request: rpb.SubmitRequest, context: grpc.aio.ServicerContext) -> rpb.Job:
        await self._draining(context)
        try:
            spec = spec_from_request(request)
        except SpecError as exc:
            await context.abort(Code.INVALID_ARGUMENT, str(exc))
        return self.jobs.submit(spec).to_proto()

    async def list_jobs(
        self, request: rpb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> rpb.ListJobsResponse:
        return rpb.ListJobsResponse(
            jobs=[j.to_proto() for j in sorted(self.jobs.jobs.values(), key=lambda j: j.id)]
        )

    async def _job(self, job_id: str, context: grpc.aio.ServicerContext) -> Any:
        try:
            return self.jobs.get(job_id)
        except UnknownJob as exc:
            await context.abort(Code.NOT_FOUND, str(exc.args[0]))

    async def get_job(self, request: rpb.GetJobRequest, context: grpc.aio.ServicerContext) -> rpb.Job:
        return (await self._job(request.id, context)).to_proto()

    async def cancel(self, request: rpb.CancelRequest, context: grpc.aio.ServicerContext) -> rpb.Job:
        job = await self._job(request.id, context)
        try:
            self.jobs.cancel(job.id)
        except JobEnded as exc:
            await context.abort(Code.FAILED_PRECONDITION, str(exc))
        return job.to_proto()

    async def watch(
        self, request: rpb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[rpb.JobEvent]:
        job = await self._job(request.id, context)
        async for e in self.jobs.watch(job.id, request.after):
            yield rpb.JobEvent(seq=e["seq"], time=e["time"], level=e["level"], message=e["message"],
                               step=e["step"], progress=e["progress"], state=rpb.JobState.Value(e["state"]))  # fmt: skip
