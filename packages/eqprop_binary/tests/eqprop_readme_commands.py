"""The reference README's commands (``python main.py`` dropped), verbatim, by setting."""

FC = "--device 0 --dataset mnist --archi fc"
CONV = "--device 0 --dataset mnist --archi conv"
SEC3 = "--activationFun hardsigm --beta 0.3 --random_beta 1 --batchSize 64 --test_batchSize 512"
FC1 = f"{FC} --binary_settings bin_W --layersList 784 4096 10 {SEC3} --T 50 --Kmax 10"
FC1 += " --gamma 1e-5 1e-4 --gradThreshold 5e-7 5e-7 --lrBias 0.025 0.05 --epochs 50"
FC2 = f"{FC} --binary_settings bin_W --layersList 784 4096 4096 10 {SEC3} --T 250 --Kmax 10"
FC2 += " --gamma 5e-6 2e-5 2e-5 --gradThreshold 5e-7 5e-7 5e-7 --lrBias 0.025 0.05 0.1"
FC2 += " --epochs 50"
CONV_MNIST = f"{CONV} --binary_settings bin_W --layersList 10 --convList 64 32 1 --padding 2"
CONV_MNIST += f" --kernelSize 5 --Fpool 2 {SEC3} --T 150 --Kmax 10 --classi_gamma 5e-8"
CONV_MNIST += " --conv_gamma 5e-8 5e-8 --classi_threshold 1e-8 --conv_threshold 1e-8 1e-8"
CONV_MNIST += " --lrBias 0.025 0.05 0.1 --epochs 50"
CIFAR = "--device 0 --dataset cifar10 --archi conv --binary_settings bin_W --layersList 10"
CIFAR += " --convList 256 256 128 64 3 --padding 2 --kernelSize 5 --Fpool 2"
CIFAR += f" {SEC3} --T 150 --Kmax 10 --classi_gamma 2e-7 --conv_gamma 2e-7 2e-7 2e-7 2e-7"
CIFAR += " --classi_threshold 1e-8 --conv_threshold 1e-8 1e-8 1e-8 1e-8"
CIFAR += " --lrBias 0.025 0.05 0.1 0.2 0.4 --epochs 500"
SEC4 = "--activationFun heaviside --gamma_neur 0.5 --batchSize 64 --test_batchSize 512"
FCN1 = f"{FC} --binary_settings bin_W_N --layersList 784 8192 100 --expand_output 10 {SEC4}"
FCN1 += " --T 20 --Kmax 10 --beta 2 --random_beta 1 --gamma 2e-6 2e-6"
FCN1 += " --gradThreshold 2.5e-7 2e-7 --lrBias 1e-7 1e-7 --epochs 100"
FCN2 = f"{FC} --binary_settings bin_W_N --layersList 784 8192 8192 8000 --expand_output 800"
FCN2 += f" {SEC4} --T 30 --Kmax 160 --beta 2 --random_beta 0 --gamma 1e-6 1e-6 1e-6"
FCN2 += " --gradThreshold 2e-8 1e-8 5e-8 --lrBias 1e-6 1e-6 1e-6 --epochs 100"
CONVN = f"{CONV} --binary_settings bin_W_N --layersList 700 -convList 512 256 1"
CONVN += f" --expand_output 70 --padding 1 --kernelSize 5 --Fpool 3 {SEC4} --T 100 --Kmax 50"
CONVN += " --beta 1 --random_beta 1 --classi_gamma 5e-8 --conv_gamma 5e-8 5e-8"
CONVN_THRESHOLDS = " --classi_threshold 8e-8 --conv_threshold 8e-8 2e-7"
CONVN_TAIL = " --lrBias 2e-6 5e-6 1e-5 --batchSize 64 --test_batchSize 512 --epochs 50"

#: name -> the command's arguments, as in the README
COMMANDS = {
    "fc1_bin_W_ep": f"{FC1.replace(FC, FC + ' --optim ep')} --learnAlpha 0",
    "fc1_bin_W_bptt": f"{FC1.replace(FC, FC + ' --optim bptt')} --learnAlpha 0",
    "fc1_bin_W_ep_learnt": f"{FC1} --optim ep --learnAlpha 1 --lrAlpha 1e-4 1e-4",
    "fc2_bin_W_ep": f"{FC2} --optim ep --learnAlpha 0",
    "fc2_bin_W_bptt": f"{FC2} --optim bptt --learnAlpha 0",
    "fc2_bin_W_ep_learnt": f"{FC2} --optim ep --learnAlpha 1 --lrAlpha 1e-2 1e-2 1e-2",
    "conv_mnist_bin_W_ep": f"{CONV_MNIST} --optim ep --learnAlpha 0",
    "conv_mnist_bin_W_bptt": f"{CONV_MNIST} --optim bptt --learnAlpha 0",
    "conv_mnist_bin_W_ep_learnt": f"{CONV_MNIST} --optim ep --learnAlpha 1"
    " --lrAlpha 1e-3 1e-3 1e-3",
    "conv_cifar_bin_W_ep": f"{CIFAR} --optim ep --learnAlpha 0",
    "conv_cifar_bin_W_bptt": f"{CIFAR} --optim bptt --learnAlpha 0",
    "conv_cifar_bin_W_ep_learnt": f"{CIFAR} --optim ep --learnAlpha 1 --learnAlpha 1"
    " --lrAlpha 1e-4 1e-2 1e-2 1e-2 1e-2 --decayLrAlpha 10 --epochDecayLrAlpha 10",
    "fc1_bin_W_N_ep": f"{FCN1} --optim ep --learnAlpha 0 --rho_threshold 0.5",
    "fc1_bin_W_N_ep_learnt": f"{FCN1} --optim ep --learnAlpha 1 --lrAlpha 1e-6 1e-6"
    " --rho_threshold 0.5",
    "fc2_bin_W_N_ep": f"{FCN2} --optim ep --learnAlpha 0 --rho_threshold 0.5",
    "fc2_bin_W_N_ep_learnt": f"{FCN2} --optim ep --learnAlpha 1  --lrAlpha 1e-8 1e-8 1e-8"
    " --rho_threshold 0.5",
    "conv_mnist_bin_W_N_ep": f"{CONVN} --optim ep{CONVN_THRESHOLDS}{CONVN_TAIL} --learnAlpha 0"
    " --rho_threshold 0.5",
}

#: the learnt-alpha conv bin_W_N command, with the README's "8e-8--conv_threshold" typo
TYPO_COMMAND = (
    f"{CONVN} --optim ep --classi_threshold 8e-8--conv_threshold 8e-8 2e-7{CONVN_TAIL}"
    " --learnAlpha 1 --lrAlpha 1e-5 1e-3 1e-3 --rho_threshold 0.5"
)
