"""k-nearest-neighbour classification of latent means: how much of the label lies in the
neighbourhoods of the latent space, with no linear structure assumed."""
import numpy as np

KNN_K = 5


def knn_accuracy(train_points, train_labels, test_points, test_labels, k=KNN_K):
    """Fraction of test points whose ``k`` nearest training points (Euclidean, in the latent
    coordinates as they are) vote for their label; a tie goes to the smallest label.

    scikit-learn's KNeighborsClassifier with uniform weights: a k-d tree for a small latent,
    so 10,000 test points against 60,000 take seconds, not a 60,000 x 10,000 distance matrix.
    """
    from sklearn.neighbors import KNeighborsClassifier   # imported only when used: a slow import

    train_points = np.asarray(train_points, dtype=np.float64)
    test_points = np.asarray(test_points, dtype=np.float64)
    if not 1 <= k <= len(train_points):
        raise ValueError(f"knn_accuracy: k must be in 1..{len(train_points)} (training points), got {k}")
    if len(test_points) == 0:
        raise ValueError("knn_accuracy: no test points")
    classifier = KNeighborsClassifier(n_neighbors=k).fit(train_points, np.asarray(train_labels))
    return float(np.mean(classifier.predict(test_points) == np.asarray(test_labels)))
