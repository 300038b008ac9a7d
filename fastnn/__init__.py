"""fastnn: fully-connected networks on MNIST, as fast as a CPU allows.

    >>> import fastnn
    >>> data = fastnn.load_mnist()                  # full MNIST, or the bundled sample
    >>> task = fastnn.make_task(data)               # 10 digits, seeded validation split
    >>> net = fastnn.Network([784, 128, 64, 10], hidden="relu")
    >>> history = net.fit(task.x_train, task.labels_train, epochs=5, batch_size=64, lr=0.1)
    >>> net.score(task.x_test, task.labels_test)

What ``fastnn train`` does, from Python (see `fastnn.workflow`):

    >>> result = fastnn.run(fastnn.RunConfig.resolve("minibatch", epochs=3))
    >>> result.test_accuracy
"""

__version__ = "0.1.0"

from .config import ConfigError, RunConfig  # noqa: E402
from .data import Task, make_task  # noqa: E402
from .events import RunEvents, StopTraining  # noqa: E402
from .mnist import DataError, MnistData  # noqa: E402
from .mnist import load as load_mnist  # noqa: E402
from .modelio import ModelFileError, load_model, save_model  # noqa: E402
from .network import Network  # noqa: E402
from .history import EpochRecord, History  # noqa: E402
from .progress import ConsoleEvents  # noqa: E402
from .train import TrainingDiverged, TrainingInterrupted, fit  # noqa: E402
from .workflow import RunDiverged, RunResult, run  # noqa: E402

__all__ = [
    "ConfigError", "ConsoleEvents", "DataError", "EpochRecord", "History", "MnistData",
    "ModelFileError", "Network", "RunConfig", "RunDiverged", "RunEvents", "RunResult",
    "StopTraining", "Task", "TrainingDiverged", "TrainingInterrupted", "fit", "load_mnist",
    "load_model", "make_task", "run", "save_model",
]
