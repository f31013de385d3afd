from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.scorer import includes


@task
def hello():
    return Task(dataset=[Sample(input="Say hello.", target="hello")], scorer=includes())
